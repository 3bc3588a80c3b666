//! Loading and checking workflow definitions: the bundled presets, and every mistake a hand-written file can
//! make, each reported with the file's name.

use super::*;

/// A small workflow that passes every check; each test below breaks it in one way.
const TINY: &str = r#"
id = "tiny"
name = "Tiny"
initial = "open"
create_roles = ["account_manager"]
replan_roles = ["account_manager", "operations"]
phases = [{ id = "make", name = "Make" }, { id = "pack", name = "Pack" }]
statuses = [
  { id = "open", name = "Open" },
  { id = "making", name = "Making", phase = "make" },
  { id = "done", name = "Done", terminal = true, delivered = true },
  { id = "cancelled", name = "Cancelled", terminal = true },
]

[[transitions]]
from = ["open"]
to = "making"
roles = ["account_manager"]

[[transitions]]
from = ["making"]
to = "done"
name = "Finish"
roles = ["operations"]
guards = [{ kind = "milestones_done", phase = "make" }, { kind = "checklist_done", milestone = "build" }]

[[transitions]]
from = ["open", "making"]
to = "cancelled"
roles = ["account_manager"]
guards = [{ kind = "field", field = "cancellation_reason", format = "text" }, { kind = "confirmed" }]

[[milestones]]
key = "build"
name = "Build"
phase = "make"
due = { from = "order_date", days = 3 }
owner_role = "operations"
complete_roles = ["account_manager"]
checklist = ["Cut", "Sew"]

[[milestones]]
key = "hand_over"
name = "Hand over"
due = { from = "promised_date", days = 0 }
owner_role = "account_manager"
client_action = true
"#;

/// `TINY` with `from` replaced by `to`; fails if `from` is not in the text, so a test cannot silently test
/// the unbroken workflow.
fn tiny_with(from: &str, to: &str) -> String {
    assert!(TINY.contains(from), "the test's TOML has no {from:?}");
    TINY.replacen(from, to, 1)
}

/// Loads `text` as `file`, expects it to be refused, and returns the error (file name checked).
fn refused(file: &str, text: &str) -> WorkflowError {
    let err = Workflow::from_toml(file, text).expect_err("the workflow should be refused");
    assert_eq!(err.source_name, file);
    assert!(err.to_string().contains(file), "the message names the file: {err}");
    err
}

/// Asserts that one of the problems contains every one of `parts`.
fn assert_problem(err: &WorkflowError, parts: &[&str]) {
    assert!(
        err.problems.iter().any(|p| parts.iter().all(|part| p.contains(part))),
        "expected a problem mentioning {parts:?}, got {:#?}",
        err.problems
    );
    let text = err.to_string();
    assert!(
        parts.iter().all(|part| text.contains(part)),
        "the message shows the problem: {text}"
    );
}

#[test]
fn the_three_presets_load_with_their_ids() {
    let workflows = Workflows::load(&[]).expect("the bundled presets are valid");
    assert_eq!(workflows.ids(), ["custom-production", "make-to-order", "standard"]);
    assert_eq!(workflows.all().count(), 3);
    for (file, text) in PRESETS {
        let wf = Workflow::from_toml(file, text).expect("each preset loads on its own");
        assert_eq!(format!("{}.toml", wf.id), file, "a preset's file is named after its id");
        assert!(workflows.get(&wf.id).is_some());
        assert!(wf.status(&wf.initial).is_some());
    }
    assert!(workflows.get("no-such-workflow").is_none());
}

#[test]
fn custom_production_has_the_five_production_phases_in_order() {
    // R1, R4: Design, Pattern, Construction, Fitting, Final.
    let workflows = Workflows::load(&[]).unwrap();
    let wf = workflows.get("custom-production").unwrap();
    let phases: Vec<&str> = wf.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(phases, ["Design", "Pattern", "Construction", "Fitting", "Final"]);
    for phase in &wf.phases {
        let status = wf.status(&phase.id).expect("each phase has a status of the same id");
        assert_eq!(status.phase.as_deref(), Some(phase.id.as_str()));
        assert_eq!(wf.phase_name(&phase.id), Some(phase.name.as_str()));
    }
    let keys: Vec<&str> = wf.milestones.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "design_approval",
            "fabric_approval",
            "first_fitting",
            "final_fitting",
            "delivery"
        ]
    );
}

#[test]
fn the_standard_preset_uses_the_one_status_vocabulary() {
    // R39: pending confirmation -> in production -> shipped -> completed / cancelled (plus delivered, R24).
    let workflows = Workflows::load(&[]).unwrap();
    let wf = workflows.get("standard").unwrap();
    let ids: Vec<&str> = wf.statuses.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "pending_confirmation",
            "in_production",
            "shipped",
            "delivered",
            "completed",
            "cancelled"
        ]
    );
    assert_eq!(wf.initial, "pending_confirmation");
    assert!(wf.is_terminal("completed") && wf.is_terminal("cancelled"));
    assert!(!wf.is_terminal("delivered"));
    assert!(wf.awaits_delivery("shipped"));
    assert!(
        !wf.awaits_delivery("delivered"),
        "delivered orders are no longer judged against the promised date"
    );
    assert!(!wf.awaits_delivery("cancelled"));
    assert!(!wf.awaits_delivery("no-such-status"));
}

#[test]
fn make_to_order_gives_each_step_to_the_marketplace_role_that_owns_it() {
    // R19: the IP owner confirms, the manufacturer starts production and ships, the consumer completes.
    let workflows = Workflows::load(&[]).unwrap();
    let wf = workflows.get("make-to-order").unwrap();
    let roles = |from: &str, to: &str| wf.transition(from, to).expect("transition exists").roles.clone();
    assert_eq!(roles("placed", "confirmed"), [Role::IpOwner]);
    assert_eq!(roles("confirmed", "in_production"), [Role::Manufacturer]);
    assert_eq!(roles("in_production", "shipping"), [Role::Manufacturer]);
    assert_eq!(roles("shipping", "completed"), [Role::Customer]);
    // R22: every status change is double-checked.
    for t in &wf.transitions {
        assert!(
            t.guards.contains(&Guard::Confirmed),
            "transition to {} lacks the confirmation",
            t.to
        );
    }
    // R20, R21: shipping needs the production checklist and a tracking URL.
    let ship = wf.transition("in_production", "shipping").unwrap();
    let names: Vec<String> = ship.guards.iter().map(Guard::name).collect();
    assert_eq!(names, ["checklist_done:production", "field:tracking_url", "confirmed"]);
    assert!(wf.transition("shipping", "placed").is_none());
    let maker: Vec<&str> = wf
        .transitions_for("in_production", Role::Manufacturer)
        .map(|t| t.to.as_str())
        .collect();
    assert_eq!(maker, ["shipping"]);
    assert_eq!(wf.transitions_for("in_production", Role::IpOwner).count(), 0);
}

#[test]
fn a_small_valid_workflow_is_checked_into_a_workflow() {
    let wf = Workflow::from_toml("tiny.toml", TINY).expect("TINY is valid");
    assert_eq!(wf.id, "tiny");
    assert_eq!(wf.create_roles, [Role::AccountManager]);
    assert_eq!(wf.replan_roles, [Role::AccountManager, Role::Operations]);
    // A transition without a name is named after its target status.
    assert_eq!(wf.transition("open", "making").unwrap().name, "Making");
    assert_eq!(wf.transition("making", "done").unwrap().name, "Finish");
    assert!(
        wf.transition("making", "cancelled").is_some(),
        "a transition may leave from several statuses"
    );
    // The owner role may always complete its milestone; complete_roles add to it.
    let build = wf.milestone_plan("build").unwrap();
    assert_eq!(build.owner_role, Role::Operations);
    assert_eq!(build.complete_roles, [Role::Operations, Role::AccountManager]);
    assert_eq!(
        build.due,
        DueDef {
            from: DueAnchor::OrderDate,
            days: 3
        }
    );
    assert_eq!(build.checklist, ["Cut", "Sew"]);
    assert!(wf.milestone_plan("hand_over").unwrap().client_action);
    assert!(wf.milestone_plan("nope").is_none());
}

#[test]
fn an_unknown_role_in_a_transition_is_refused() {
    let text = tiny_with(r#"roles = ["operations"]"#, r#"roles = ["operations", "janitor"]"#);
    let err = refused("janitor.toml", &text);
    assert_problem(&err, &["transition making -> done", "unknown role 'janitor'"]);
}

#[test]
fn a_transition_with_no_role_is_refused() {
    let text = tiny_with(r#"roles = ["operations"]"#, "roles = []");
    let err = refused("nobody.toml", &text);
    assert_problem(&err, &["transition making -> done", "names no role"]);
}

#[test]
fn an_unknown_role_in_create_roles_is_refused() {
    let text = tiny_with(
        r#"create_roles = ["account_manager"]"#,
        r#"create_roles = ["account_manager", "ceo"]"#,
    );
    let err = refused("create.toml", &text);
    assert_problem(&err, &["create_roles", "unknown role 'ceo'"]);
}

#[test]
fn a_workflow_nobody_may_create_orders_in_is_refused() {
    let text = tiny_with(r#"create_roles = ["account_manager"]"#, "create_roles = []");
    let err = refused("no-creator.toml", &text);
    assert_problem(&err, &["create_roles must name at least one role"]);
}

#[test]
fn an_unknown_role_in_replan_roles_or_a_milestone_is_refused() {
    let text = tiny_with(r#"owner_role = "operations""#, r#"owner_role = "tailor""#).replacen(
        r#"replan_roles = ["account_manager", "operations"]"#,
        r#"replan_roles = ["planner"]"#,
        1,
    );
    let err = refused("roles.toml", &text);
    assert_problem(&err, &["replan_roles", "unknown role 'planner'"]);
    assert_problem(&err, &["milestone 'build'", "unknown role 'tailor'"]);
}

#[test]
fn an_unreachable_status_is_refused() {
    let text = tiny_with(
        r#"{ id = "cancelled", name = "Cancelled", terminal = true },"#,
        r#"{ id = "cancelled", name = "Cancelled", terminal = true },
  { id = "limbo", name = "Limbo", terminal = true },"#,
    );
    let err = refused("limbo.toml", &text);
    assert_problem(&err, &["status 'limbo' is unreachable from the initial status 'open'"]);
    assert_eq!(
        err.problems.len(),
        1,
        "only the unreachable status is wrong: {:?}",
        err.problems
    );
}

#[test]
fn a_transition_to_an_unknown_status_is_refused() {
    let text = tiny_with(r#"to = "done""#, r#"to = "shipped""#);
    let err = refused("shipped.toml", &text);
    assert_problem(&err, &["transition making -> shipped", "unknown status 'shipped'"]);
    // `done` lost its only way in, which is reported too.
    assert_problem(&err, &["status 'done' is unreachable"]);
}

#[test]
fn a_transition_from_an_unknown_status_is_refused() {
    let text = tiny_with(r#"from = ["open", "making"]"#, r#"from = ["open", "makng"]"#);
    let err = refused("typo.toml", &text);
    assert_problem(&err, &["transition open|makng -> cancelled", "unknown status 'makng'"]);
}

#[test]
fn an_unknown_initial_status_is_refused() {
    let text = tiny_with(r#"initial = "open""#, r#"initial = "new""#);
    let err = refused("initial.toml", &text);
    assert_problem(&err, &["initial status 'new' is not one of the statuses"]);
}

#[test]
fn a_milestones_done_guard_naming_a_phase_no_milestone_has_is_refused() {
    // `pack` is a real phase, but no milestone belongs to it: the guard could never be judged.
    let text = tiny_with(
        r#"{ kind = "milestones_done", phase = "make" }"#,
        r#"{ kind = "milestones_done", phase = "pack" }"#,
    );
    let err = refused("phase.toml", &text);
    assert_problem(
        &err,
        &[
            "transition making -> done",
            "guard milestones_done names phase 'pack', which no milestone has",
        ],
    );
}

#[test]
fn a_milestones_done_guard_naming_an_unknown_milestone_is_refused() {
    let text = tiny_with(
        r#"{ kind = "milestones_done", phase = "make" }"#,
        r#"{ kind = "milestones_done", milestones = ["build", "paint"] }"#,
    );
    let err = refused("paint.toml", &text);
    assert_problem(
        &err,
        &[
            "transition making -> done",
            "guard milestones_done names unknown milestone 'paint'",
        ],
    );
}

#[test]
fn a_milestones_done_guard_naming_nothing_is_refused() {
    let text = tiny_with(
        r#"{ kind = "milestones_done", phase = "make" }"#,
        r#"{ kind = "milestones_done" }"#,
    );
    let err = refused("nothing.toml", &text);
    assert_problem(&err, &["names neither a phase nor milestones"]);
}

#[test]
fn a_milestones_done_guard_naming_known_milestones_is_accepted() {
    let text = tiny_with(
        r#"{ kind = "milestones_done", phase = "make" }"#,
        r#"{ kind = "milestones_done", milestones = ["build", "hand_over"] }"#,
    );
    let wf = Workflow::from_toml("named.toml", &text).expect("named milestones exist");
    let names: Vec<String> = wf
        .transition("making", "done")
        .unwrap()
        .guards
        .iter()
        .map(Guard::name)
        .collect();
    assert_eq!(names, ["milestones_done:build,hand_over", "checklist_done:build"]);
}

#[test]
fn a_checklist_done_guard_naming_a_milestone_without_checklist_is_refused() {
    let text = tiny_with(r#"milestone = "build""#, r#"milestone = "hand_over""#);
    let err = refused("checklist.toml", &text);
    assert_problem(
        &err,
        &["guard checklist_done names milestone 'hand_over', which has no checklist"],
    );
}

#[test]
fn a_checklist_done_guard_naming_an_unknown_milestone_is_refused() {
    let text = tiny_with(r#"milestone = "build""#, r#"milestone = "assembly""#);
    let err = refused("assembly.toml", &text);
    assert_problem(&err, &["guard checklist_done names unknown milestone 'assembly'"]);
}

#[test]
fn a_field_guard_naming_no_field_is_refused() {
    let text = tiny_with(r#"field = "cancellation_reason""#, r#"field = " ""#);
    let err = refused("field.toml", &text);
    assert_problem(&err, &["a field guard names no field"]);
}

#[test]
fn a_non_terminal_status_with_no_way_out_is_refused() {
    let text = tiny_with(
        r#"{ id = "done", name = "Done", terminal = true, delivered = true }"#,
        r#"{ id = "done", name = "Done" }"#,
    );
    let err = refused("dead-end.toml", &text);
    assert_problem(&err, &["status 'done' is not terminal but has no transition out of it"]);
}

#[test]
fn a_duplicate_status_id_is_refused() {
    let text = tiny_with(
        r#"{ id = "cancelled", name = "Cancelled", terminal = true },"#,
        r#"{ id = "cancelled", name = "Cancelled", terminal = true },
  { id = "open", name = "Open again" },"#,
    );
    let err = refused("twice.toml", &text);
    assert_problem(&err, &["status 'open' is defined twice"]);
}

#[test]
fn duplicate_milestones_phases_and_checklist_items_are_refused() {
    let text = tiny_with(r#"checklist = ["Cut", "Sew"]"#, r#"checklist = ["Cut", "Sew", "Cut"]"#)
        .replacen(r#"key = "hand_over""#, r#"key = "build""#, 1)
        .replacen(
            r#"{ id = "pack", name = "Pack" }"#,
            r#"{ id = "make", name = "Make again" }"#,
            1,
        );
    let err = refused("dupes.toml", &text);
    assert_problem(&err, &["milestone 'build' is defined twice"]);
    assert_problem(&err, &["phase 'make' is defined twice"]);
    assert_problem(&err, &["milestone 'build' checklist item 'Cut' is defined twice"]);
}

#[test]
fn unknown_phases_in_statuses_and_milestones_are_refused() {
    let text = tiny_with(r#"phase = "make" },"#, r#"phase = "brew" },"#).replacen(
        "phase = \"make\"\ndue",
        "phase = \"bake\"\ndue",
        1,
    );
    assert!(text.contains("bake"), "the milestone's phase was replaced");
    let err = refused("phases.toml", &text);
    assert_problem(&err, &["status 'making' names unknown phase 'brew'"]);
    assert_problem(&err, &["milestone 'build' names unknown phase 'bake'"]);
}

#[test]
fn an_empty_id_is_refused() {
    let err = refused("blank.toml", &tiny_with(r#"id = "tiny""#, r#"id = "  ""#));
    assert_problem(&err, &["id must not be empty"]);
}

#[test]
fn a_toml_syntax_error_is_refused_with_its_position() {
    let text = tiny_with(r#"name = "Tiny""#, r#"name = "Tiny"#);
    let err = refused("broken.toml", &text);
    assert_eq!(err.problems.len(), 1);
    assert!(
        err.problems[0].contains("line"),
        "the parser's position is kept: {}",
        err.problems[0]
    );
}

#[test]
fn an_unknown_key_or_guard_kind_is_refused() {
    let err = refused(
        "colour.toml",
        &tiny_with(r#"name = "Tiny""#, "name = \"Tiny\"\ncolour = \"red\""),
    );
    assert_problem(&err, &["colour"]);
    let err = refused(
        "kind.toml",
        &tiny_with(r#"{ kind = "confirmed" }"#, r#"{ kind = "prayed" }"#),
    );
    assert_problem(&err, &["prayed"]);
    let err = refused("format.toml", &tiny_with(r#"format = "text""#, r#"format = "poem""#));
    assert_problem(&err, &["poem"]);
}

#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    let text = tiny_with(r#"initial = "open""#, r#"initial = "new""#)
        .replacen(r#"roles = ["operations"]"#, r#"roles = ["janitor"]"#, 1)
        .replacen(r#"milestone = "build""#, r#"milestone = "hand_over""#, 1);
    let err = refused("many.toml", &text);
    assert_problem(&err, &["initial status 'new'"]);
    assert_problem(&err, &["unknown role 'janitor'"]);
    assert_problem(&err, &["which has no checklist"]);
    assert!(err.problems.len() >= 3, "{:#?}", err.problems);
    // One problem per line in the message.
    assert_eq!(
        err.to_string().lines().filter(|l| l.starts_with("  - ")).count(),
        err.problems.len()
    );
}

#[test]
fn an_extra_file_adds_a_workflow() {
    let workflows = Workflows::load(&[("tiny.toml".into(), TINY.into())]).unwrap();
    assert_eq!(
        workflows.ids(),
        ["custom-production", "make-to-order", "standard", "tiny"]
    );
}

#[test]
fn an_extra_file_replaces_a_preset_with_the_same_id() {
    let text =
        tiny_with(r#"id = "tiny""#, r#"id = "standard""#).replacen(r#"name = "Tiny""#, r#"name = "Our standard""#, 1);
    let workflows = Workflows::load(&[("our-standard.toml".into(), text)]).unwrap();
    assert_eq!(workflows.ids(), ["custom-production", "make-to-order", "standard"]);
    let standard = workflows.get("standard").unwrap();
    assert_eq!(standard.name, "Our standard");
    assert_eq!(standard.initial, "open");
    assert!(standard.status("pending_confirmation").is_none());
}

#[test]
fn several_bad_files_are_all_reported() {
    let extra = vec![
        ("good.toml".to_string(), TINY.to_string()),
        (
            "bad-role.toml".to_string(),
            tiny_with(r#"roles = ["operations"]"#, r#"roles = ["janitor"]"#),
        ),
        ("bad-syntax.toml".to_string(), "id = ".to_string()),
        (
            "bad-initial.toml".to_string(),
            tiny_with(r#"initial = "open""#, r#"initial = "new""#),
        ),
    ];
    let errors = Workflows::load(&extra).expect_err("three files are bad");
    let files: Vec<&str> = errors.iter().map(|e| e.source_name.as_str()).collect();
    assert_eq!(files, ["bad-role.toml", "bad-syntax.toml", "bad-initial.toml"]);
    assert!(errors[0].to_string().contains("janitor"));
    assert!(errors[2].to_string().contains("initial status 'new'"));
}

#[test]
fn guards_are_named_the_way_refusals_report_them() {
    let field = Guard::Field {
        field: "tracking_url".into(),
        format: guard::FieldFormat::TrackingUrl,
    };
    assert_eq!(field.name(), "field:tracking_url");
    assert_eq!(
        Guard::MilestonesDone {
            phase: Some("design".into()),
            milestones: vec![]
        }
        .name(),
        "milestones_done:design"
    );
    assert_eq!(
        Guard::MilestonesDone {
            phase: None,
            milestones: vec!["a".into(), "b".into()]
        }
        .name(),
        "milestones_done:a,b"
    );
    assert_eq!(
        Guard::ChecklistDone {
            milestone: "production".into()
        }
        .name(),
        "checklist_done:production"
    );
    assert_eq!(Guard::Confirmed.name(), "confirmed");
}

#[test]
fn a_promised_date_milestone_may_be_planned_before_or_after_that_date() {
    let text = tiny_with(
        "due = { from = \"promised_date\", days = 0 }",
        "due = { from = \"promised_date\", days = -5 }",
    );
    let wf = Workflow::from_toml("early.toml", &text).unwrap();
    assert_eq!(
        wf.milestone_plan("hand_over").unwrap().due,
        DueDef {
            from: DueAnchor::PromisedDate,
            days: -5
        }
    );
}
