"""OCI images: reading layouts and archives (:mod:`.oci`, :mod:`.image`), exporting (:mod:`.export`), blobs."""
