"""``railbench soak``: windows of the rails test and the world sweep for hours, judged over the windows
(docs/design.md, "Soak")."""
