"""What ``optimlab bench`` measures (the scripts in ``benchmarks/`` call these modules)."""
