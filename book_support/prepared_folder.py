"""prep_images.py's output folder, kept to one preparation however often it is rerun.

The book's prep_images.py wrote its folders once. Here a rerun finishes what a stopped run began,
so the folder must hold one split only:
  * refuse_unusable: a source that is not a folder, or an output inside the source, refused;
  * settings_of / check_or_record_settings: OUTPUT/settings.json records the settings and the
    source files, and a rerun with others is refused (it would mix two splits);
  * make_folders: trainDir and testDir made, a killed run's temporaries removed.
"""

import hashlib
import json
from pathlib import Path

from book_support import plumbing

FOLDERS = ("trainDir", "testDir")


def refuse_unusable(source_dir, output_dir):
    if not source_dir.is_dir():
        raise plumbing.UserError(f"{source_dir} is not a folder of images")
    if output_dir.resolve() == source_dir.resolve() or source_dir.resolve() in \
            output_dir.resolve().parents:
        raise plumbing.UserError("the output folder must not be inside the source folder")


def settings_of(args, jobs):
    """What the split and the outputs depend on; kept as OUTPUT/settings.json."""
    names = "\n".join(sorted(Path(job[0]).name for job in jobs))
    names = hashlib.sha256(names.encode()).hexdigest()
    return {"seed": args.seed, "test_count": args.test_count,
            "train_count": args.train_count, "size": args.size,
            "mode": args.mode, "sources": names}


def check_or_record_settings(output_dir, settings):
    """A rerun may only finish the same preparation: other settings (or other source files)
    would mix old test photos with a new labels.csv and leak test photos into trainDir."""
    record = output_dir / "settings.json"
    if record.exists():
        try:
            earlier = json.loads(record.read_text())
        except (OSError, ValueError):
            earlier = None
        earlier = earlier if isinstance(earlier, dict) else {}
        changed = ["other source files" if key == "sources" else
                   f"--{key.replace('_', '-')} {earlier.get(key)}, now {value}"
                   for key, value in settings.items() if earlier.get(key) != value]
        if changed:
            raise plumbing.UserError(f"{output_dir} was prepared differently "
                                     f"({'; '.join(changed)}); choose a new output folder, or "
                                     f"delete that one")
        return
    if any((output_dir / folder).is_dir() and any((output_dir / folder).iterdir())
           for folder in FOLDERS):
        raise plumbing.UserError(f"{output_dir} already holds images that no settings.json "
                                 f"describes; choose a new output folder")
    with plumbing.atomic_output(record) as temporary:
        temporary.write_text(json.dumps(settings, indent=1))


def make_folders(output_dir):
    for folder in FOLDERS:
        (output_dir / folder).mkdir(parents=True, exist_ok=True)
        for leftover in (output_dir / folder).glob(".*.*.jpg"):  # a killed run's temporaries
            leftover.unlink()
