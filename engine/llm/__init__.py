"""Chat-model backends behind one interface (see base.py); load them with registry.load_model."""
