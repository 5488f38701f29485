"""Everything around the chapter's code: the book's scripts at the top of the project import it.

The nine files at the project's root are the book's listings, rebuilt; this package holds what the
book does not have, once, in modules named for their job:

  plumbing      one-line errors and exit codes, --help with defaults, Ctrl-C, progress, output files
  downloads     verified downloads (size, checksum, atomic rename, resume), safe extraction
  image_io      opening a reader's images of any format and mode; reporting the bad ones
  tf_setup      TensorFlow's quiet start-up, --cpu, GPU memory growth, sessions, seeds
  checkpoints   resume or start, save with the run's record (run.json), one lock per folder
  gradcam       Grad-CAM: where in the picture a network found the class
  mnist_data    MNIST's IDX files (the book's `input_data` is gone from TensorFlow 2)
  alexnet_files the AlexNet weights and class names, read so that they cannot run code

Importing the package does no work: each module is imported by the script that needs it.
"""
