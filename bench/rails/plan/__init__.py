"""The rails test's plan: what a run measures (``config``), who sits on which rail and leaf (``layout``,
``fabric_map``), the rounds and cell budgets (``schedule``, ``budget``), and what the run will cost and took
(``acceptance``, ``model``, ``phases``, ``learn``, ``laps``). Imports neither the measurement nor the diagnosis."""
