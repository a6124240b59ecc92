"""Greenlight's worker side: runs on cluster nodes next to the user's job.

Standalone on purpose: it imports the standard library, ``pynvml`` and (in the
examples only) ``torch``, never ``scheduler``, so it works in any Ray worker environment.
"""
