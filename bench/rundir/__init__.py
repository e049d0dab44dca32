"""The run directory (docs/design.md, "Records and schemas"): atomic files, results.csv, run.json's typed
record (``runjson``), the verdict record (``verdict``), what the run was judged against (``judged_by``),
rails.json's schema and check, junit.xml."""
