"""Monitoring: drift, alarms, the loop back to labeling, shadow comparison."""
