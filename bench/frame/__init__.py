"""What every job does around its measurement, written once: validate, the run record, the guard, the
evidence, the finish step (history, then the report)."""
