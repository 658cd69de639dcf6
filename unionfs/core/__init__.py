"""The overlay's core: the stack, lookup, readdir, copy-up and the walks they share."""
