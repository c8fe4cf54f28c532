"""Flower settings for EchoDiary (``echodiary flower`` passes this file as ``--conf``).

Address, port and basic auth come from EchoDiary's settings on the command line. Task arguments
are job ids only, and the columns below leave them out anyway.
"""

max_tasks = 10000  # Flower keeps tasks in memory; cap it
purge_offline_workers = 300  # seconds before a dead worker disappears from the list
natural_time = True
tasks_columns = "name,uuid,state,received,started,runtime,worker,retries"
