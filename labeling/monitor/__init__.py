"""After deployment: production logs, the live model, drift checks, alarms, the loop back to labeling,
shadow comparison, and what the Monitoring page draws.

Imports the layers below it (model and everything under it).
"""
