"""The run directory: atomic files, results.csv, run.json, junit.xml."""
