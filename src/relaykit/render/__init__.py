"""Stage 2 of the pipeline: the model becomes files (an overlay tree with chroot-correct
paths), the same for every artifact."""
