"""The Labeling section: the label page with its player, my labels, conventions."""
