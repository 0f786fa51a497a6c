"""The toolshed: every tool an agent may be granted, each declaring what it can do."""
