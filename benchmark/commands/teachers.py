"""``kdbench teachers list | train | import``: the teacher store.

``train`` trains a teacher with CE only on a recipe (tracked in MLflow like every run);
``import`` stores a checkpoint written by the public CRD benchmark code under the key a suite
with that recipe looks for, so published teachers can be reused as they are.
"""

from __future__ import annotations

from benchmark.commands import non_negative_int, positive_int

from benchmark.commands.run import add_common_run_options, run_options_from


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("teachers", help="list, train or import teachers",
                                   description=__doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    listing = actions.add_parser("list", help="teachers in the store")
    listing.add_argument("--store", default=None)
    listing.set_defaults(func=list_command)

    train = actions.add_parser("train", help="train a teacher (CE only) into the store")
    _teacher_key_options(train)
    add_common_run_options(train, executors=False)
    train.set_defaults(func=train_command)

    imp = actions.add_parser("import", help="import a published CRD-code checkpoint")
    imp.add_argument("checkpoint", help="path of the .pth file (a dict with key 'model')")
    _teacher_key_options(imp)
    imp.add_argument("--store", default=None)
    imp.add_argument("--data-dir", default=None,
                     help="evaluate the imported teacher's test accuracy on this data")
    imp.set_defaults(func=import_command)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _teacher_key_options(parser) -> None:
    parser.add_argument("--arch", required=True, help="model name, e.g. resnet32x4")
    parser.add_argument("--dataset", default="cifar100")
    parser.add_argument("--recipe", default=None,
                        help="recipe name (default: crd-cifar, or digits for digits)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--epochs", type=positive_int, default=None)
    parser.add_argument("--batch-size", type=positive_int, default=None)


def _store(args):
    from benchmark.store import Store

    return Store.resolve(args.store)


def _spec(args):
    import models
    from benchmark.data import dataset_info
    from benchmark.teachers import teacher_spec_for

    models.create_model(args.arch, num_classes=10) if not models.is_model(args.arch) else None
    dataset_info(args.dataset)
    recipe = args.recipe or ("digits" if args.dataset == "digits" else "crd-cifar")
    return teacher_spec_for(args.arch, args.dataset, recipe, args.seed, args.epochs,
                            args.batch_size)


def list_command(args) -> int:
    from benchmark.teachers import TeacherStore

    store = TeacherStore(_store(args))
    rows = store.list()
    if not rows:
        print(f"No teachers in {store.root}.")
        return 0
    print(f"{'dataset':12s} {'arch':16s} {'recipe':10s} {'ep':>4s} {'seed':>4s} "
          f"{'test acc':>8s}  {'source':24s} sha256")
    for m in rows:
        print(f"{m['dataset']:12s} {m['arch']:16s} {m['recipe']:10s} {m['epochs']:4d} "
              f"{m['seed']:4d} {m['test_acc']:8.2f}  {m['source'][:24]:24s} {m['sha256'][:12]}")
    return 0


def train_command(args) -> int:
    from benchmark.runner import run_cohort_job

    options = run_options_from(args)
    spec = _spec(args).model_copy(update={"suite": "teachers"})
    [result] = run_cohort_job([spec], "teachers", options)
    if result.status != "FINISHED":
        print(f"Teacher training FAILED: {result.reason}")
        return 1
    print(f"Trained {spec.student} on {spec.dataset}: test accuracy "
          f"{result.test_acc_last:.2f}% -> {result.weights_path}")
    return 0


def import_command(args) -> int:
    from benchmark.teachers import TeacherStore

    spec = _spec(args)
    from benchmark.data import dataset_info

    info = dataset_info(args.dataset)
    store = TeacherStore(_store(args))
    test_acc = None
    if args.data_dir:
        test_acc = _evaluate_checkpoint(spec, args.checkpoint, args.data_dir)
    meta = store.import_published(spec, args.checkpoint, num_classes=info.num_classes,
                                  test_acc=test_acc)
    print(f"Imported {args.checkpoint} as {spec.student} for {spec.dataset} "
          f"(recipe {spec.recipe.name}, seed {spec.seed}); test acc {meta['test_acc']:.2f}; "
          f"sha256 {meta['sha256'][:12]} -> {store.weights_path(spec)}")
    return 0


def _evaluate_checkpoint(spec, checkpoint: str, data_dir: str) -> float:
    import models
    import torch
    from benchmark.data import load_splits, make_loader
    from benchmark.engine import accuracy

    splits = load_splits(spec.dataset, data_dir, val_fraction=0.0)
    model = models.load_published_checkpoint(spec.student, checkpoint,
                                             num_classes=splits.info.num_classes)
    loader = make_loader(splits.test, splits.info, 256, train=False, seed=0)
    return accuracy(model, loader, torch.device("cpu"), None, False)
