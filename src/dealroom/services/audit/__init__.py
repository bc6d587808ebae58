"""The audit trail: the per-deal hash chain (`chain`) and its exports (`exports`)."""
