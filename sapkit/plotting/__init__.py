"""Every figure and viewer: plotly figures, slice rendering, 3D viewers and notebook widgets,
with one colour convention.
"""
