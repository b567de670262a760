"""The VM side of a job: the user-data renderer and the worker script it runs."""
