"""The preflight checks of a node against a profile: a registry of small checks whose skip always says why
(``checks``, ``check_base``, ``error_checks``), and the comparison of many nodes' answers (``cluster``).
``railbench check`` and ``accept`` run them; torch-free."""
