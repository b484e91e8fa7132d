"""The partitioned replay: its plan, its step functions (the same on every engine), the engines."""
