"""``kdbench studies show``: a table of every Optuna study in a storage (budget, trial counts,
best validation accuracy, best parameters), the expected best validation accuracy of each study
at the smallest common budget, and PNG plots: per study, Optuna's optimisation history and
parameter importances; for all studies, ``budget.png``, the expected best validation accuracy
against the number of trials. See docs/studies.md."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("studies", help="inspect Optuna studies made by `kdbench tune`",
                                   description=__doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    show = actions.add_parser("show", help="table of best parameters, and plots",
                              description=__doc__)
    show.add_argument("--storage", default=None,
                      help="Optuna storage URL (default sqlite:///optuna.db; journal:FILE)")
    show.add_argument("--study-name", default=None, help="only this study")
    show.add_argument("--out", default="results/studies",
                      help="folder for the plots (default results/studies)")
    show.add_argument("--no-plots", action="store_true", help="print the table only")
    show.set_defaults(func=show_command)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def show_command(args: argparse.Namespace) -> int:
    import warnings

    import optuna

    from studies.budget_curves import budget_lines, save_budget_curves
    from studies.plots import save_study_plots
    from studies.show import format_table, load_studies, study_row

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    studies = load_studies(args.storage, args.study_name)
    if not studies:
        print("No studies in this storage yet; run `kdbench tune` first.")
        return 0
    print(format_table([study_row(s) for s in studies]))
    for line in budget_lines(studies):
        print(line)
    if args.no_plots:
        return 0
    curves = save_budget_curves(studies, args.out)
    if curves is not None:
        print(f"saved {curves}")
    for study in studies:
        files, notes = save_study_plots(study, args.out)
        for note in notes:
            print(f"note: {note}")
        for path in files:
            print(f"saved {path}")
    return 0
