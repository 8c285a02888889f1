"""Engines: the same run on many workers (Ray Data today; the core is engine-neutral).

:mod:`sink.engine.blocks` sends a task's records through the stages of ``sink run``;
:mod:`sink.engine.budget` shares one credential's quota among the workers;
:mod:`sink.engine.ledger` and :mod:`sink.engine.outputs` keep one ledger and one set of outputs
for all of them, reached through :mod:`sink.engine.link`; :mod:`sink.engine.ray` is the Ray
Data datasink. Only :mod:`sink.engine.ray` imports Ray (the ``sink[ray]`` extra).
"""
