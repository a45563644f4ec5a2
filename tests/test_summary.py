"""The definitions of the summary numbers, on hand-made curves."""

import numpy as np

from jgrok.io import results

STEPS = np.array([10, 20, 30, 40])


def test_first_step_above_threshold():
    curves = np.array([
        [0.5, 0.995, 1.0, 1.0],  # crosses at 20
        [0.5, 0.99, 0.99, 0.99],  # never strictly above 0.99: the budget
        [1.0, 1.0, 1.0, 1.0],  # at the first eval
        [0.2, 0.999, np.nan, np.nan],  # crossed before it diverged
    ])
    steps, reached = results.first_step_above(curves, STEPS, budget=40)
    assert list(steps) == [20, 40, 10, 20]
    assert list(reached) == [True, False, True, True]


def test_summary_rows_and_grokking_delay():
    rows = [{"run": i, "task": "x_plus_y", "seed": i, "split_seed": i, "order_seed": i, "lr": 1e-3, "wd": 0.5,
             "init": "default", "init_scale": 1.0, "optimizer": "adamw", "filter": "none", "filter_alpha": 0.98,
             "filter_lambda": 2.0, "filter_window": 100, "fraction": 0.5, "p": 97, "d_model": 128, "n_layers": 2}
            for i in range(2)]
    m = {
        "train_acc": np.array([[0.5, 1.0, 1.0, 1.0], [0.2, 0.3, 0.4, 0.5]]),
        "val_acc": np.array([[0.1, 0.2, 0.995, 1.0], [0.0, 0.0, np.nan, np.nan]]),
        "train_loss": np.array([[2.0, 0.1, 0.01, 0.01], [3.0, 2.5, np.nan, np.nan]]),
        "val_loss": np.array([[3.0, 2.0, 0.1, 0.05], [4.0, 4.0, np.nan, np.nan]]),
        "weight_norm": np.array([[30, 29, 28, 27.0], [30, 31, np.nan, np.nan]]),
    }
    s = results.summarize(rows, m, STEPS, 40, 8, np.array([-1, 23]))
    assert s[0]["step_train_acc_99"] == 20 and s[0]["step_val_acc_99"] == 30 and s[0]["grok_delay"] == 10
    assert s[0]["final_val_acc"] == 1.0 and s[0]["final_weight_norm"] == 27.0 and s[0]["diverged_step"] == ""
    # the diverged run: finals are its last finite evaluation, steps are the budget
    assert s[1]["step_val_acc_99"] == 40 and s[1]["reached_val_99"] == 0 and s[1]["diverged_step"] == 23
    assert s[1]["final_val_loss"] == 4.0 and s[1]["final_weight_norm"] == 31.0
    info = results.final_info(s)
    assert list(info) == ["x_plus_y"]
    assert info["x_plus_y"]["final_info_dict"]["step_val_acc_99"] == [30, 40]
    assert info["x_plus_y"]["means"]["step_val_acc_99_mean"] == 35
    assert info["x_plus_y"]["stderrs"]["step_val_acc_99_stderr"] == 5 / 2  # population std / n


def test_summary_cells_are_parsed_once_with_their_types():
    """The one parser of summary.csv: what csv.DictReader gives becomes None, bool, int, float or stays a string,
    and parsing again changes nothing."""
    raw = {"run": "3", "wd": "0.5", "lr": "1e-05", "init": "xavier_uniform", "orthogonal_grad": "False",
           "diverged_step": "", "final_val_loss": "nan", "variant": ""}
    typed, = results.parse_summary([raw])
    assert typed["run"] == 3 and isinstance(typed["run"], int) and typed["wd"] == 0.5 and typed["lr"] == 1e-05
    assert typed["init"] == "xavier_uniform" and typed["orthogonal_grad"] is False
    assert typed["diverged_step"] is None and typed["variant"] is None and np.isnan(typed["final_val_loss"])
    again, = results.parse_summary([typed])
    assert {k: v for k, v in again.items() if k != "final_val_loss"} == {k: v for k, v in typed.items()
                                                                         if k != "final_val_loss"}
