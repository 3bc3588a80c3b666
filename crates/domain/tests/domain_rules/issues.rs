//! Issues and exceptions (R5, R6, R10, R36): severity by policy and its escalation, the protocol of options,
//! decision and resolution, and the clocks of telling the client and opening the issue.

use crate::support::*;
use chrono::{DateTime, TimeDelta, Utc};
use ordertrail_domain::Role;
use ordertrail_domain::decide::Acting;
use ordertrail_domain::error::DomainError;
use ordertrail_domain::follow_up::Channel;
use ordertrail_domain::ids::OrderId;
use ordertrail_domain::issue::{
    self, Breach, ClientDecisionInput, ClientToldInput, Impact, Issue, IssueChange, IssueId, IssueKind, IssueOption,
    IssuePolicy, IssueStatus, NewIssue, ProposedOptions, ResolutionInput, Severity, SeverityChange,
};
use ordertrail_domain::money::Money;
use uuid::Uuid;

fn usd(amount: &str) -> Money {
    Money::parse("USD", amount).unwrap()
}

fn report(kind: IssueKind, impact: Impact) -> NewIssue {
    NewIssue {
        kind,
        description: "The silk for Prospero's cloak is held at customs".into(),
        impact,
        discovered_at: None,
        expected_resolution_at: noon(2026, 2, 10),
        owner_id: ACCOUNT_MANAGER,
    }
}

fn delay(days: u32) -> Impact {
    Impact {
        delay_days: days,
        ..Impact::default()
    }
}

fn open_with(input: NewIssue, policy: &IssuePolicy, now: DateTime<Utc>) -> (Issue, IssueChange) {
    let change = issue::open(
        IssueId(Uuid::from_u128(0x155)),
        OrderId(Uuid::from_u128(0x0d)),
        input,
        policy,
        acting(Role::AccountManager),
        now,
    )
    .expect("the issue opens");
    let IssueChange::Opened { issue } = &change else {
        panic!("open made {change:?}")
    };
    ((**issue).clone(), change)
}

fn opened(input: NewIssue) -> Issue {
    open_with(input, &IssuePolicy::default(), noon(2026, 2, 2)).0
}

/// Runs `command` on the issue as it is and applies the change it makes; panics when refused.
fn applied(issue: &mut Issue, command: impl FnOnce(&Issue) -> Result<IssueChange, DomainError>) -> IssueChange {
    let change = command(issue).unwrap_or_else(|e| panic!("refused: {e}"));
    issue.apply(&change);
    change
}

fn options() -> ProposedOptions {
    ProposedOptions {
        consulted: vec![Role::Operations, Role::Design],
        options: vec![
            IssueOption {
                summary: "Wait 10 days for the original silk; delivery moves by 10 days".into(),
                timeline_days: 10,
                cost: usd("0"),
            },
            IssueOption {
                summary: "Use the Italian silk at a surcharge; stay on schedule".into(),
                timeline_days: 0,
                cost: usd("900.00"),
            },
        ],
        recommended_option: 2,
    }
}

fn decision(chosen: usize) -> ClientDecisionInput {
    ClientDecisionInput {
        chosen_option: chosen,
        decided_by: "Maya Lin".into(),
        decided_at: None,
        evidence: "Email 3 Feb: 'Go with the Italian silk.'".into(),
        channel: Channel::Email,
    }
}

fn resolution(summary: &str) -> ResolutionInput {
    ResolutionInput {
        summary: summary.into(),
        shift_days: None,
        new_promised_date: None,
        changes_budget: false,
        changes_scope: false,
        change_items: vec![],
    }
}

#[test]
fn a_budget_overrun_of_12_percent_escalates_to_the_sales_director() {
    let impact = Impact {
        budget_overrun_percent: 12,
        ..Impact::default()
    };
    let (issue, change) = open_with(
        report(IssueKind::MaterialDelay, impact),
        &IssuePolicy::default(),
        noon(2026, 2, 2),
    );
    assert_eq!(issue.severity, Severity::Major);
    let escalation = change.escalation().expect("a major issue escalates");
    assert_eq!(escalation.to_role, Role::SalesDirector);
    assert_eq!(escalation.reasons, ["a budget overrun of 12% is more than 10%"]);
    assert!(issue.is_open());

    let small = opened(report(
        IssueKind::MaterialDelay,
        Impact {
            budget_overrun_percent: 10,
            ..Impact::default()
        },
    ));
    assert_eq!(small.severity, Severity::Minor);
    assert!(small.escalation.is_none());
}

#[test]
fn a_5_day_material_delay_is_minor_under_seed_000_and_severe_under_seed_004() {
    let seed_000 = IssuePolicy::preset("seed_000").unwrap();
    let seed_004 = IssuePolicy::preset("seed_004").unwrap();
    assert_eq!(seed_000, IssuePolicy::default());
    assert_eq!(
        seed_000.assess(IssueKind::MaterialDelay, &delay(5)).severity,
        Severity::Minor
    );
    assert_eq!(
        seed_004.assess(IssueKind::MaterialDelay, &delay(5)).severity,
        Severity::Major
    );
    // The thresholds: seed 000 "> 1 week", seed 004 "> 3 days" (1-2 days is minor; 3 falls to minor).
    assert_eq!(
        seed_000.assess(IssueKind::MaterialDelay, &delay(7)).severity,
        Severity::Minor
    );
    assert_eq!(
        seed_000.assess(IssueKind::MaterialDelay, &delay(8)).severity,
        Severity::Major
    );
    assert_eq!(
        seed_004.assess(IssueKind::MaterialDelay, &delay(2)).severity,
        Severity::Minor
    );
    assert_eq!(
        seed_004.assess(IssueKind::MaterialDelay, &delay(3)).severity,
        Severity::Minor
    );
    // Seed 004: a hurt core need is severe whatever the delay; seed 000: scope disputes are always major.
    let hurt = Impact {
        core_need_hurt: true,
        ..Impact::default()
    };
    assert_eq!(seed_004.assess(IssueKind::Other, &hurt).severity, Severity::Major);
    assert_eq!(
        seed_000.assess(IssueKind::ScopeDispute, &Impact::default()).severity,
        Severity::Major
    );
    assert_eq!(
        seed_004.assess(IssueKind::ScopeDispute, &Impact::default()).severity,
        Severity::Minor
    );
    // "severe" is seed 004's word for major.
    assert_eq!(serde_json::from_str::<Severity>("\"severe\"").unwrap(), Severity::Major);
}

#[test]
fn the_issue_policy_reads_from_toml_with_a_preset_and_overrides() {
    let policy = IssuePolicy::from_toml("preset = \"seed_004\"\nescalate_to = \"operations\"\n").unwrap();
    assert_eq!(policy.major_delay_days, 3);
    assert_eq!(policy.escalate_to, Role::Operations);
    assert_eq!(IssuePolicy::from_toml("").unwrap(), IssuePolicy::default());
    let direct: IssuePolicy = toml::from_str("major_delay_days = 5").unwrap();
    assert_eq!(direct.major_delay_days, 5);
    assert_eq!(direct.client_notice_hours, 24);
    assert!(IssuePolicy::from_toml("preset = \"seed_999\"").is_err());
    assert!(IssuePolicy::from_toml("escalate_to = \"customer\"").is_err());
    assert!(IssuePolicy::from_toml("major_delay = 5").is_err());
}

#[test]
fn the_playbook_offers_rush_fee_or_phased_delivery_when_production_is_behind() {
    // R13: unresponsive client -> another channel; behind schedule -> rush fee or phased delivery; fitting
    // unavailable -> backup dates, virtual fitting, stand-in.
    let policy = IssuePolicy::default();
    let behind = policy.playbook_for(IssueKind::Scheduling);
    assert!(behind.iter().any(|m| m.contains("rush fee")), "{behind:?}");
    assert!(behind.iter().any(|m| m.contains("phased delivery")), "{behind:?}");
    assert!(
        policy
            .playbook_for(IssueKind::ClientUnresponsive)
            .iter()
            .any(|m| m.contains("another channel"))
    );
    assert_eq!(policy.playbook_for(IssueKind::FittingUnavailable).len(), 3);
    assert!(policy.playbook_for(IssueKind::Payment).is_empty());

    // An organisation replaces the moves of a kind and keeps the others.
    let own = IssuePolicy::from_toml("[playbook]\nclient_unresponsive = [\"Send a WeChat message\"]\n").unwrap();
    assert_eq!(
        own.playbook_for(IssueKind::ClientUnresponsive),
        ["Send a WeChat message"]
    );
    assert_eq!(own.playbook_for(IssueKind::Scheduling), behind);
    let refused = IssuePolicy::from_toml("[playbook]\nquality = [\"  \"]\n");
    assert_eq!(
        invalid_fields(refused),
        ["issue_policy.playbook.quality"],
        "an empty move is refused"
    );
    assert!(
        IssuePolicy::from_toml("[playbook]\nweather = [\"Wait\"]\n").is_err(),
        "an unknown kind"
    );
}

#[test]
fn an_issue_with_bad_fields_reports_each_of_them() {
    let input = NewIssue {
        description: "  ".into(),
        discovered_at: Some(noon(2026, 2, 3)),
        expected_resolution_at: noon(2026, 2, 1),
        impact: delay(100_000),
        ..report(IssueKind::Other, Impact::default())
    };
    let result = issue::open(
        IssueId(Uuid::from_u128(1)),
        OrderId(Uuid::from_u128(2)),
        input,
        &IssuePolicy::default(),
        acting(Role::Operations),
        noon(2026, 2, 2),
    );
    assert_eq!(
        invalid_fields(result),
        [
            "description",
            "impact.delay_days",
            "discovered_at",
            "expected_resolution_at"
        ]
    );
}

#[test]
fn the_customer_does_not_open_issues() {
    let result = issue::open(
        IssueId(Uuid::from_u128(1)),
        OrderId(Uuid::from_u128(2)),
        report(IssueKind::Other, Impact::default()),
        &IssuePolicy::default(),
        acting(Role::Customer),
        noon(2026, 2, 2),
    );
    assert!(matches!(
        result,
        Err(DomainError::RoleNotAllowed {
            role: Role::Customer,
            ..
        })
    ));
}

#[test]
fn severity_is_never_silently_lowered() {
    let policy = IssuePolicy::default();
    let now = noon(2026, 2, 2);
    let mut issue = opened(report(IssueKind::MaterialDelay, delay(10)));
    assert_eq!(issue.severity, Severity::Major);

    // A better estimate of the delay computes minor, but the issue stays major.
    applied(&mut issue, |it| {
        issue::change_impact(it, delay(2), &policy, acting(Role::Operations), now)
    });
    assert_eq!(issue.computed_severity, Severity::Minor);
    assert_eq!(issue.severity, Severity::Major);

    let lower = || SeverityChange {
        severity: Severity::Minor,
        reason: "The silk cleared customs; two days late at most".into(),
    };
    // Lowering is for the escalation role only, with a reason.
    assert!(matches!(
        issue::set_severity(&issue, lower(), &policy, acting(Role::AccountManager), now),
        Err(DomainError::RoleNotAllowed { .. })
    ));
    let no_reason = SeverityChange {
        reason: " ".into(),
        ..lower()
    };
    assert_eq!(
        invalid_fields(issue::set_severity(
            &issue,
            no_reason,
            &policy,
            acting(Role::SalesDirector),
            now
        )),
        ["reason"]
    );
    applied(&mut issue, |it| {
        issue::set_severity(it, lower(), &policy, acting(Role::SalesDirector), now)
    });
    assert_eq!(issue.severity, Severity::Minor);

    // Never below what the impact says: a scope dispute is major whatever anyone thinks.
    let dispute = opened(report(IssueKind::ScopeDispute, Impact::default()));
    let refused = issue::set_severity(&dispute, lower(), &policy, acting(Role::SalesDirector), now);
    assert!(matches!(refused, Err(DomainError::Conflict(m)) if m.contains("correct the impact")));
}

#[test]
fn a_person_may_raise_a_minor_issue_which_then_escalates_once() {
    let policy = IssuePolicy::default();
    let now = noon(2026, 2, 2);
    let mut issue = opened(report(IssueKind::Scheduling, delay(1)));
    assert!(issue.escalation.is_none());
    let raise = SeverityChange {
        severity: Severity::Major,
        reason: "The lead actor can only fit on one day before opening night".into(),
    };
    let change = applied(&mut issue, |it| {
        issue::set_severity(it, raise, &policy, acting(Role::AccountManager), now)
    });
    assert_eq!(change.escalation().map(|e| e.to_role), Some(Role::SalesDirector));
    assert_eq!(issue.severity, Severity::Major);
    // A worse impact later does not escalate a second time.
    let change = applied(&mut issue, |it| {
        issue::change_impact(it, delay(20), &policy, acting(Role::Operations), now)
    });
    assert!(change.escalation().is_none());
}

#[test]
fn an_issue_not_told_to_the_client_within_24_hours_is_breached() {
    let policy = IssuePolicy::default();
    let opened_at = noon(2026, 2, 2);
    let mut issue = opened(report(IssueKind::MaterialDelay, delay(3)));
    assert!(issue::breaches(&issue, &policy, opened_at + TimeDelta::hours(23)).is_empty());
    let late = issue::breaches(&issue, &policy, opened_at + TimeDelta::hours(25));
    assert_eq!(
        late,
        [Breach::ClientNotTold {
            due_at: opened_at + TimeDelta::hours(24),
            told_at: None
        }]
    );
    assert_eq!(late[0].rule(), "R10");

    // Telling the client in time clears it; telling late stays a breach.
    let mut on_time = issue.clone();
    let told = |at| ClientToldInput {
        told_at: Some(at),
        channel: Channel::Phone,
        note: Some("Called Maya".into()),
    };
    let at = opened_at + TimeDelta::hours(3);
    applied(&mut on_time, |it| {
        issue::record_client_told(it, told(at), acting(Role::AccountManager), at)
    });
    assert!(issue::breaches(&on_time, &policy, opened_at + TimeDelta::hours(30)).is_empty());
    let at = opened_at + TimeDelta::hours(26);
    applied(&mut issue, |it| {
        issue::record_client_told(it, told(at), acting(Role::AccountManager), at)
    });
    assert_eq!(
        issue::breaches(&issue, &policy, opened_at + TimeDelta::hours(30)),
        [Breach::ClientNotTold {
            due_at: opened_at + TimeDelta::hours(24),
            told_at: Some(at)
        }]
    );
    // Told once: again is refused.
    assert!(matches!(
        issue::record_client_told(&issue, told(at), acting(Role::AccountManager), at),
        Err(DomainError::Conflict(_))
    ));
}

#[test]
fn an_issue_opened_2_hours_after_discovery_breaches_r36() {
    let policy = IssuePolicy::default();
    let now = noon(2026, 2, 2);
    let input = NewIssue {
        discovered_at: Some(now - TimeDelta::hours(2)),
        ..report(IssueKind::Quality, Impact::default())
    };
    let (issue, _) = open_with(input, &policy, now);
    let breaches = issue::breaches(&issue, &policy, now);
    assert_eq!(
        breaches,
        [Breach::OpenedLate {
            discovered_at: now - TimeDelta::hours(2),
            opened_at: now,
            allowed_minutes: 60
        }]
    );
    assert_eq!(breaches[0].rule(), "R36");

    let input = NewIssue {
        discovered_at: Some(now - TimeDelta::minutes(50)),
        ..report(IssueKind::Quality, Impact::default())
    };
    let (in_time, _) = open_with(input, &policy, now);
    assert!(issue::breaches(&in_time, &policy, now).is_empty());
}

#[test]
fn an_issue_past_its_expected_resolution_is_overdue_until_resolved() {
    let policy = IssuePolicy::default();
    let mut issue = opened(report(IssueKind::Scheduling, delay(1)));
    let now = noon(2026, 2, 2);
    applied(&mut issue, |it| {
        issue::record_client_told(
            it,
            ClientToldInput {
                told_at: None,
                channel: Channel::Email,
                note: None,
            },
            acting(Role::AccountManager),
            now,
        )
    });
    let after = noon(2026, 2, 11);
    assert_eq!(
        issue::breaches(&issue, &policy, after)
            .iter()
            .map(Breach::rule)
            .collect::<Vec<_>>(),
        ["R34"]
    );
    applied(&mut issue, |it| {
        issue::resolve(
            it,
            resolution("Fitting moved to Thursday"),
            acting(Role::AccountManager),
            after,
        )
    });
    assert!(issue::breaches(&issue, &policy, after).is_empty());
}

#[test]
fn a_minor_issue_is_resolved_at_once_and_stops_blocking() {
    let mut issue = opened(report(IssueKind::Scheduling, delay(1)));
    assert!(issue::is_open(&issue));
    let change = applied(&mut issue, |it| {
        issue::resolve(
            it,
            resolution("Fitting moved to Thursday"),
            acting(Role::SalesCoordinator),
            noon(2026, 2, 3),
        )
    });
    let IssueChange::Resolved {
        change_order,
        resolution: done,
    } = change
    else {
        panic!("resolve made {change:?}")
    };
    assert!(change_order.is_none());
    assert_eq!(done.shift_days, 0);
    assert_eq!(issue.status, IssueStatus::Resolved);
    assert!(!issue::is_open(&issue));
    assert!(matches!(
        issue::resolve(
            &issue,
            resolution_again(),
            acting(Role::SalesCoordinator),
            noon(2026, 2, 4)
        ),
        Err(DomainError::Conflict(_))
    ));
}

fn resolution_again() -> ResolutionInput {
    resolution("again")
}

#[test]
fn a_major_issue_follows_the_protocol_options_recommendation_decision_resolution() {
    let now = noon(2026, 2, 2);
    let am = acting(Role::AccountManager);
    let mut issue = opened(report(IssueKind::MaterialDelay, delay(10)));

    // No resolution and no decision before 2-3 options with a recommendation.
    assert!(matches!(
        issue::resolve(&issue, resolution("Wait"), am, now),
        Err(DomainError::Conflict(m)) if m.contains("2-3 options")
    ));
    assert!(matches!(
        issue::record_client_decision(&issue, decision(1), am, now),
        Err(DomainError::Conflict(_))
    ));
    let one_option = ProposedOptions {
        options: options().options.into_iter().take(1).collect(),
        recommended_option: 3,
        consulted: vec![],
    };
    assert_eq!(
        invalid_fields(issue::propose_options(&issue, one_option, am, now)),
        ["consulted", "options", "recommended_option"]
    );

    applied(&mut issue, |it| issue::propose_options(it, options(), am, now));
    assert_eq!(issue.status, IssueStatus::OptionsProposed);
    assert_eq!(issue.recommended_option, Some(2));

    // Deciding tells the client, if nobody recorded it before.
    let at = now + TimeDelta::hours(5);
    applied(&mut issue, |it| issue::record_client_decision(it, decision(1), am, at));
    assert_eq!(issue.status, IssueStatus::ClientDecided);
    assert_eq!(issue.client_notice.as_ref().map(|n| n.told_at), Some(at));
    assert_eq!(issue.chosen_option().map(|o| o.timeline_days), Some(10));

    // The replan follows the chosen option; a wait costs nothing, so no change order.
    let change = applied(&mut issue, |it| {
        issue::resolve(
            it,
            ResolutionInput {
                new_promised_date: Some(date(2026, 3, 26)),
                ..resolution("Waiting for the original silk")
            },
            am,
            at,
        )
    });
    let IssueChange::Resolved {
        resolution: done,
        change_order,
    } = change
    else {
        panic!("resolve made {change:?}")
    };
    assert_eq!(done.shift_days, 10);
    assert_eq!(done.new_promised_date, Some(date(2026, 3, 26)));
    assert!(!done.changes_budget);
    assert!(change_order.is_none());
}

#[test]
fn a_scope_changing_resolution_opens_a_change_order() {
    let now = noon(2026, 2, 2);
    let am: Acting = acting(Role::AccountManager);
    let mut issue = opened(report(IssueKind::MaterialDelay, delay(10)));
    applied(&mut issue, |it| issue::propose_options(it, options(), am, now));
    applied(&mut issue, |it| issue::record_client_decision(it, decision(2), am, now));
    let change = applied(&mut issue, |it| {
        issue::resolve(
            it,
            ResolutionInput {
                changes_scope: true,
                ..resolution("Italian silk instead")
            },
            am,
            now,
        )
    });
    let IssueChange::Resolved {
        resolution: done,
        change_order,
    } = change
    else {
        panic!("resolve made {change:?}")
    };
    assert!(done.changes_budget, "the chosen option costs money");
    let draft = change_order.expect("a change order seed");
    assert_eq!(draft.origin_issue, Some(issue.id));
    assert_eq!(draft.items.len(), 1);
    assert_eq!(draft.items[0].amount, usd("900.00"));
    assert!(draft.reason.contains("Italian silk instead"));

    // A minor issue whose resolution changes scope opens one too, with the items given.
    let mut minor = opened(report(IssueKind::DesignChange, Impact::default()));
    let items = vec![ordertrail_domain::change_order::ChangeItem {
        description: "A second cape for Ariel".into(),
        amount: usd("450.00"),
    }];
    let change = applied(&mut minor, |it| {
        issue::resolve(
            it,
            ResolutionInput {
                changes_scope: true,
                change_items: items.clone(),
                ..resolution("Adding the cape")
            },
            am,
            now,
        )
    });
    let IssueChange::Resolved { change_order, .. } = change else {
        panic!("resolve made {change:?}")
    };
    assert_eq!(change_order.map(|c| c.items), Some(items));
}

#[test]
fn an_issue_and_its_changes_round_trip_through_json() {
    let mut issue = opened(report(IssueKind::MaterialDelay, delay(10)));
    let change = issue::propose_options(&issue, options(), acting(Role::Operations), noon(2026, 2, 2)).unwrap();
    let json = serde_json::to_value(&change).unwrap();
    assert_eq!(json["type"], "options_proposed");
    assert_eq!(json["options"][1]["cost"]["amount"], "900.00");
    let back: IssueChange = serde_json::from_value(json).unwrap();
    issue.apply(&back);
    let json = serde_json::to_string(&issue).unwrap();
    assert!(json.contains("\"kind\":\"material_delay\""));
    assert_eq!(serde_json::from_str::<Issue>(&json).unwrap(), issue);
}
