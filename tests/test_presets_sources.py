"""Every preset names its source and its known differences, and its optimiser, sampling and model are the ones its
source uses (the table below is the list of facts checked, one row per preset, taken from each source; the
preset file's header says where each fact comes from)."""

import pytest

from jgrok import config

GROKFAST_MODEL = dict(n_layers=2, d_model=128, n_heads=4, mlp_ratio=4, norm="grokfast", activation="gelu",
                      final_ln=True, bias=True, head_bias=False, causal=True)
TEMPLATE_MODEL = dict(n_layers=2, d_model=128, n_heads=4, mlp_ratio=4, norm="post", activation="gelu",
                      n_positions=5, final_ln=True, bias=True, head_bias=True, causal=True)
NANDA_MODEL = dict(n_layers=1, d_model=128, n_heads=4, mlp_ratio=4, norm="none", activation="relu", n_positions=3,
                   final_ln=False, bias=True, attn_bias=False, head_bias=False)
TEMPLATE_OPTIM = dict(name="adamw", lr=1e-3, wd=0.5, b1=0.9, b2=0.98, eps=1e-8, warmup=50)
TEMPLATE_TRAIN = dict(batch_size=512, sampling="replacement", loss="answer")

# preset: (words the source line must contain, task facts, model facts, optimiser facts, training facts)
FACTS = {
    "ai_scientist": ("SakanaAI/AI-Scientist", dict(name="x_div_y", p=97, fraction=0.5, vocab="template"),
                     TEMPLATE_MODEL, TEMPLATE_OPTIM, dict(TEMPLATE_TRAIN, steps=7500, eval_every=10)),
    "ai_scientist_init_study": ("AI-Scientist", dict(p=97, fraction=0.5), TEMPLATE_MODEL, TEMPLATE_OPTIM,
                                dict(TEMPLATE_TRAIN, steps=7500)),
    "seed_luck": ("AI-Scientist", dict(name="x_plus_y", p=97), TEMPLATE_MODEL, TEMPLATE_OPTIM, TEMPLATE_TRAIN),
    "wd_sweep": ("AI-Scientist", dict(name="x_plus_y", p=97), TEMPLATE_MODEL, TEMPLATE_OPTIM, TEMPLATE_TRAIN),
    "tiny_cpu": ("none", dict(name="x_plus_y", p=31), dict(n_layers=1, d_model=64, norm="post"), dict(name="adamw"),
                 dict(sampling="replacement")),
    "grokfast_baseline": ("ironjr/grokfast", dict(name="x_times_y", p=97, fraction=0.5, vocab="grokfast"),
                          GROKFAST_MODEL, dict(name="adam_l2", lr=1e-3, wd=0.0, b1=0.9, b2=0.98, warmup=10,
                                               filter="none"),
                          dict(batch_size=512, sampling="epochs", eval_every_epochs=1, steps=300000)),
    "grokfast_ema": ("ironjr/grokfast", dict(name="x_times_y", p=97, fraction=0.5, vocab="grokfast"), GROKFAST_MODEL,
                     dict(name="adam_l2", lr=1e-3, wd=0.005, b1=0.9, b2=0.98, warmup=10, filter="ema",
                          filter_alpha=0.98, filter_lambda=2.0),
                     dict(batch_size=512, sampling="epochs", eval_every_epochs=1, steps=300000)),
    "grokfast_ma": ("ironjr/grokfast", dict(name="x_times_y", p=97, fraction=0.5, vocab="grokfast"), GROKFAST_MODEL,
                    dict(name="adam_l2", lr=1e-3, wd=0.01, b1=0.9, b2=0.98, warmup=10, filter="ma",
                         filter_window=100, filter_lambda=5.0),
                    dict(batch_size=512, sampling="epochs", eval_every_epochs=1, steps=300000)),
    "power_et_al": ("Power et al. (2022)", dict(p=97, fraction=0.5),
                    dict(n_layers=2, d_model=128, n_heads=4, norm="post", activation="relu", final_ln=False,
                         attn_bias=False, head_bias=False, mlp_bias=False, positions="sinusoidal", bias=True),
                    dict(name="adamw", lr=1e-3, wd=1.0, b1=0.9, b2=0.98, warmup=10),
                    dict(batch_size=512, steps=100000)),
    "power_fraction": ("Power et al. (2022)", dict(name="permutation", perm_n=5),
                       dict(n_layers=2, d_model=128, n_heads=4, norm="post", activation="relu", final_ln=False,
                            attn_bias=False, head_bias=False, mlp_bias=False, positions="sinusoidal", bias=True),
                       dict(name="adamw", lr=1e-3, wd=1.0, b1=0.9, b2=0.98, warmup=10),
                       dict(batch_size=512, steps=100000)),
    "power_fraction_cpu": ("none", dict(name="x_plus_y", p=31), dict(n_layers=1, d_model=64), dict(name="adamw"),
                           dict(sampling="replacement", steps=2000)),
    "nanda": ("progress-measures-paper", dict(name="x_plus_y", p=113, fraction=0.3, vocab="nanda"), NANDA_MODEL,
              dict(name="adamw", lr=1e-3, wd=1.0, b1=0.9, b2=0.98, warmup=10),
              dict(sampling="full", steps=50000, loss="answer")),
    "init_scale": ("Omnigrok", dict(name="x_plus_y", p=113, fraction=0.3, vocab="nanda"), NANDA_MODEL,
                   dict(name="adamw", lr=1e-3, wd=1.0, b1=0.9, b2=0.98, warmup=0), dict(sampling="full", steps=15000)),
    "julia_repro": ("Julia/Flux", dict(name="x_plus_y", p=97, fraction=0.5, vocab="signed"),
                    dict(n_layers=2, d_model=128, n_heads=4, n_positions=4),
                    dict(name="adamw", lr=3e-4, wd=0.0, b1=0.9, b2=0.999, eps=1e-8, warmup=0),
                    dict(batch_size=512, sampling="epochs", eval_every_epochs=10, epochs=10000,
                         stop_when="val_acc>=0.99", loss="answer")),
    "julia_loss": ("Julia/Flux", dict(name="x_plus_y", p=97, fraction=0.5, vocab="signed"),
                   dict(n_layers=2, d_model=128, n_heads=4, n_positions=4),
                   dict(name="adamw", lr=3e-4, wd=0.0, b1=0.9, b2=0.999, eps=1e-8, warmup=0),
                   dict(batch_size=512, sampling="epochs", eval_every_epochs=10, epochs=10000,
                        stop_when="val_acc>=0.99", loss="answer")),
    "prieto_2025": ("LucasPrietoAl/grokking-at-the-edge-of-numerical-stability",
                    dict(name="x_plus_y", p=113, fraction=0.4), dict(kind="mlp", hidden=(200, 200), bias=False),
                    dict(name="adamw", lr=0.01, wd=0.0, b1=0.9, b2=0.99, eps=1e-25, warmup=0),
                    dict(sampling="full", loss="answer", softmax_precision=32)),
    "liu_phase": ("Liu et al. (2022)", dict(name="x_plus_y", p=53, fraction=0.8),
                  dict(n_layers=2, d_model=256, n_heads=1, mlp_ratio=1, causal=False), dict(name="adamw"),
                  dict(sampling="full", steps=100000, stop_when="val_acc>0.999")),
    "liu_phase_cpu": ("none", dict(name="x_plus_y", p=31), dict(n_layers=1, d_model=64), dict(name="adamw"),
                      dict(sampling="replacement", steps=2000)),
    "mheight_wd": ("m-height", dict(name="mheight"), dict(kind="resnet", width=64, blocks=5),
                   dict(name="adamw", lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, warmup=0),
                   dict(sampling="epochs", batch_size=4096)),
    "mheight_tiny": ("m-height", dict(name="mheight"), dict(kind="resnet", width=32, blocks=2), dict(name="adamw"),
                     dict(sampling="epochs", batch_size=256)),
}

PRESETS = sorted(p.stem for p in config.CONFIGS_DIR.glob("*.yaml"))


def test_every_preset_has_a_row():
    assert sorted(FACTS) == PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_header_names_source_and_known_differences(name):
    text = (config.CONFIGS_DIR / f"{name}.yaml").read_text()
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    assert text.startswith("# source: "), f"{name}.yaml must start with a '# source:' line"
    assert FACTS[name][0] in header.splitlines()[0] + header, f"{name}.yaml's source line must name {FACTS[name][0]}"
    assert "Known differences" in header, f"{name}.yaml must list its known differences"


@pytest.mark.parametrize("name", PRESETS)
def test_optimiser_sampling_and_model_match_the_source(name):
    cfg = config.load(name)
    _, task, model, optim, train = FACTS[name]
    for section, facts in (("task", task), ("model", model), ("optim", optim), ("train", train)):
        got = getattr(cfg, section)
        for field, want in facts.items():
            assert getattr(got, field) == want, f"{name}: {section}.{field} is {getattr(got, field)!r}, not {want!r}"


def test_liu_phase_grid_is_the_sources():
    """15 decoder lrs 10^linspace(-9, -1, 15) x 19 decays exp(linspace(-4, 3, 19)), to 4 significant digits."""
    import numpy as np

    grid = config.load("liu_phase").grid
    np.testing.assert_allclose(grid["lr"], 10 ** np.linspace(-9, -1, 15), rtol=5e-4)
    np.testing.assert_allclose(grid["wd"], np.exp(np.linspace(-4, 3, 19)), rtol=5e-4)


def test_julia_loss_is_julia_repro_with_the_two_losses_as_variants():
    base, study = config.load("julia_repro"), config.load("julia_loss")
    for section in ("task", "model", "optim", "train", "init"):
        assert getattr(study, section) == getattr(base, section), section
    assert {name: config.variant_config(study, name).train.loss for name in study.grid["variant"]} == {
        "seq2val": "answer", "seq2seq": "sequence"}
    assert study.grid["seed"] == list(range(32))


def test_power_fraction_is_power_et_al_over_training_fractions():
    """The fraction preset trains the power_et_al model and optimiser (figure 1 centre: S5 composition), over
    training fractions, with one seed list for every fraction."""
    frac, base = config.load("power_fraction"), config.load("power_et_al")
    assert frac.model == base.model and frac.optim == base.optim and frac.train == base.train
    assert frac.grid["fraction"] == [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8] and len(frac.grid["seed"]) == 8
    assert config.load("power_fraction_cpu").grid["fraction"] == [0.3, 0.4, 0.5, 0.6, 0.7]
