"""Layer formats: archives, OCI images and layouts, the kernel overlayfs on-disk format."""
