"""Everything around the chapter's code, written once; the book's scripts import it.

The nine files at the project's root are the book's listings, rebuilt, each in the order of its
section. This package holds what the book does not have, in modules named for their job (the
README's table lists them all, grouped by the script that uses them):

  shared        plumbing (errors, --help, Ctrl-C, progress, output files), file_roles (what
                each script reads and writes, checked once before any work), downloads, image_io,
                tf_setup (devices, sessions, seeds), checkpoints (resume, run.json, the lock),
                graph_checks (graph files from outside, op by op), gradcam, training_curves
                (both training scripts' TensorBoard scalars and --plot)
  file formats  mnist_data, alexnet_files, vgg_files, inception_files
  per script    lenet_plots, lenet_runs; pets_data, finetune_runs, prepared_folder, image_workers;
                style_preflight, style_losses, lbfgs, style_outputs; inception_cam,
                inception_bottlenecks; emotion_csv, emotion_cache, emotion_options, emotion_vgg,
                emotion_training_graph, emotion_training_aids, emotion_runs,
                emotion_early_stopping, emotion_logit_adjustment, emotion_report, emotion_tta,
                faces, face_detector, emotion_figure, live_video

Importing the package does no work: each script imports the modules it needs.
"""
