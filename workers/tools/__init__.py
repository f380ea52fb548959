"""The built-in tools a worker runs itself; dispatch.py is what the run loop sees of them."""
