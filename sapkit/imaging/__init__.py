"""Pure array operations every stage shares: connected components, resampling onto a grid, display windows.

Modules: ``components`` (connected components of a mask, their statistics, small-piece removal),
``resample`` (a volume onto another grid, SimpleITK), ``window`` (the one display-window rule).
Nothing here reads or writes files; the layer may import only ``errors``, ``config``,
``validation`` and ``io`` (docs/design.md §2).
"""
