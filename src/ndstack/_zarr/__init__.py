"""Zarr / OME-Zarr stores: plan, write, resume, lock, read and verify (private).

The public names are :func:`ndstack.to_zarr`, :func:`ndstack.verify` and what
:func:`ndstack.open` does with a store; see the README's "Layout" section.
"""
