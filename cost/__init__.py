"""The cost model of the stack (model.py) beside its price files (prices-<region>.yml)."""
