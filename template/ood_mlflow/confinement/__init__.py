"""The kernel's boundary: what a session's processes may touch, and Linux Landlock enforcing it.

rules.py decides, from the Plan, which paths the server and MLflow's tools may read or write (pure);
landlock.py applies such rules to a process through the kernel; confined_tool.py starts MLflow's own tools
(migrate-filestore, db upgrade) confined that way.
"""
