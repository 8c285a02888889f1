"""Plan and apply: make Docker Hub match a desired-state file, sending only what changes.

:mod:`~sink.plan.state` reads the file, :mod:`~sink.plan.refresh` reads Hub, :mod:`~sink.plan.diff`
compares them (pure), :mod:`~sink.plan.make` renders and guards the actions into a plan,
:mod:`~sink.plan.show` prints it, :mod:`~sink.plan.store` saves it, and :mod:`~sink.plan.apply`
sends it through the same send core as ``sink run``.
"""
