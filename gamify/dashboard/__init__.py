"""The campaign manager's desk: the dashboard pages, rules simulation, the demo."""
