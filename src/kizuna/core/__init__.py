"""Layer 5, the core: settings, the warehouse, the ops schema, the source contract, dates, locks, yaml reading."""
