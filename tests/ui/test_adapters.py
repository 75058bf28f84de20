"""The Learned preferences page: adapters listed with their gate results; switch on, roll back, off."""
from __future__ import annotations

from memdesk.engine.parametric.registry import AdapterRegistry
from memdesk.ui.adapters import AdaptersView


def candidate(registry, tmp_path, name):
    adapter = registry.create(base_fingerprint="base", base_name="SmolLM2", trainer="torch", data_snapshot=name,
                              config={})
    native = tmp_path / name
    native.mkdir()
    (native / "adapter_config.json").write_text("{}")
    registry.store_weights(adapter.id, native_dir=native, gguf_path=None)
    gate = {"adherence_before": -2.5, "adherence_after": -1.2, "ppl_before": 20.0, "ppl_after": 20.4,
            "ppl_change": 0.02, "passed": True}
    return registry.set_status(adapter.id, "candidate", metrics={"gate": gate, "examples": {"sft": 12}})


def test_switch_on_roll_back_and_off(qtbot, kw_mem, runner, settle, tmp_path):
    registry = AdapterRegistry(kw_mem.db)
    first, second = candidate(registry, tmp_path, "one"), candidate(registry, tmp_path, "two")
    view = AdaptersView(kw_mem, runner, "base", "SmolLM2")
    qtbot.addWidget(view)
    settle()
    assert view.table.rowCount() == 2 and not view.empty.isVisible()
    assert view.table.item(0, 4).text() == "-2.50 → -1.20"
    row = next(i for i, a in enumerate(view.adapters) if a.id == first.id)
    view.table.selectRow(row)
    with qtbot.waitSignal(view.activeChanged):
        view.activate_selected()
    settle()
    assert registry.active("base").id == first.id
    view.table.selectRow(next(i for i, a in enumerate(view.adapters) if a.id == second.id))
    with qtbot.waitSignal(view.activeChanged):
        view.activate_selected()
    settle()
    with qtbot.waitSignal(view.activeChanged):
        view.rollback()
    settle()
    assert registry.active("base").id == first.id  # one click back to the previous adapter
    with qtbot.waitSignal(view.activeChanged):
        view.switch_off()
    settle()
    assert registry.active("base") is None and not view.off_button.isEnabled()


def test_an_empty_registry_says_what_will_happen(qtbot, kw_mem, runner, settle):
    view = AdaptersView(kw_mem, runner, "base", "SmolLM2")
    qtbot.addWidget(view)
    settle()
    assert view.table.rowCount() == 0 and "nightly" in view.empty.text()
    with qtbot.waitSignal(view.trainRequested):
        view.train_button.click()


def test_without_the_training_component_the_page_says_what_it_needs(qtbot, kw_mem, runner, settle):
    view = AdaptersView(kw_mem, runner, "base", "SmolLM2", missing=("torch", "peft"))
    qtbot.addWidget(view)
    settle()
    assert not view.train_button.isEnabled()
    text = view.message.text()
    assert "torch, peft" in text and "Everything else works" in text and "`memdesk" not in text
