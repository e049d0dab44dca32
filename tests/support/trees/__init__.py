"""Fixture nodes as the tools see them: sysfs trees of GPUs, HCAs and PCIe switches (``fabric_trees``,
``gpudirect_trees``) and their error counters (``counters``), whole node designs over them (``node_designs``)
and the nvidia-smi outputs and kernel logs of the same nodes (``gpu_state_docs``)."""
