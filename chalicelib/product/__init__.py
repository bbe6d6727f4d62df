"""Your product's own actions and routes: every module in this package is loaded with ``app.py``.

Switchboard ships this package empty and never adds to it, so upgrading
Switchboard does not touch your files. Declare actions with
:func:`chalicelib.extend.action` and REST routes with
:class:`chalicelib.extend.Routes` (any Chalice ``Blueprint`` at a module's top
level is registered); see ``docs/extending.md``.
"""
