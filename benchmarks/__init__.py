"""The unionfs benchmark suite: unionfs side by side with the raw filesystems,
PyFilesystem2's MultiFS, the kernel's overlayfs, fuse-overlayfs and unionfs-fuse.

Run ``python -m benchmarks`` (``--help`` for the size presets); see README.rst,
section "Benchmarks", and ``benchmarks/RESULTS.md`` for the recorded numbers.
"""
