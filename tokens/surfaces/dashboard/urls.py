"""The dashboard, mounted at "/". Token pages need only the token id (e-mails link to them)."""

from django.urls import path

from tokens.surfaces.dashboard import (
    aap,
    aap_policies,
    bulk,
    deadlines,
    members,
    slack,
    views,
    webhooks,
)

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<slug:project_slug>/members", members.member_list, name="member_list"),
    path(
        "projects/<slug:project_slug>/members/invite", members.member_invite, name="member_invite"
    ),
    path(
        "projects/<slug:project_slug>/members/<int:membership_id>/<str:action>",
        members.member_action,
        name="member_action",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/tokens",
        views.token_list,
        name="token_list",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/tags",
        views.tag_list,
        name="tag_list",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/audit",
        views.audit_export,
        name="audit_export",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/webhooks",
        webhooks.webhook_list,
        name="webhook_list",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/webhooks/new",
        webhooks.webhook_create,
        name="webhook_create",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/webhooks/<str:endpoint_id>",
        webhooks.webhook_detail,
        name="webhook_detail",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/webhooks/<str:endpoint_id>/"
        "<str:action>",
        webhooks.webhook_action,
        name="webhook_action",
    ),
    path("projects/<slug:project_slug>/<str:environment_slug>/aap", aap.aap_page, name="aap"),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/aap/provisioners",
        aap.aap_provisioner_create,
        name="aap_provisioner_create",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/aap/provisioners/<int:provisioner_id>/revoke",
        aap.aap_provisioner_revoke,
        name="aap_provisioner_revoke",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/aap/instances",
        aap.aap_instance_create,
        name="aap_instance_create",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/aap/instances/<uuid:instance_id>/rename",
        aap.aap_instance_rename,
        name="aap_instance_rename",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/aap/instances/<uuid:instance_id>/delete",
        aap.aap_instance_delete,
        name="aap_instance_delete",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/aap/policies",
        aap_policies.aap_policies,
        name="aap_policies",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/aap/policies/window",
        aap_policies.aap_policy_window,
        name="aap_policy_window",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/aap/policies/rules",
        aap_policies.aap_policy_rule_add,
        name="aap_policy_rule_add",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/aap/policies/rules/<int:rule_id>",
        aap_policies.aap_policy_rule_edit,
        name="aap_policy_rule_edit",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/aap/policies/rules/<int:rule_id>/delete",
        aap_policies.aap_policy_rule_delete,
        name="aap_policy_rule_delete",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/aap/policies/rules/<int:rule_id>/move",
        aap_policies.aap_policy_rule_move,
        name="aap_policy_rule_move",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/slack", slack.slack_page, name="slack"
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/slack/connect",
        slack.slack_connect,
        name="slack_connect",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/slack/settings",
        slack.slack_settings,
        name="slack_settings",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/slack/routes",
        slack.slack_route_add,
        name="slack_route_add",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/slack/routes/<int:route_id>/delete",
        slack.slack_route_delete,
        name="slack_route_delete",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/slack/disconnect",
        slack.slack_disconnect,
        name="slack_disconnect",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/deadline-rules",
        deadlines.deadline_rules,
        name="deadline_rules",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/deadline-rules/new",
        deadlines.deadline_rule_add,
        name="deadline_rule_add",
    ),
    path(
        "projects/<slug:project_slug>/<str:environment_slug>/deadline-rules/<int:rule_id>/delete",
        deadlines.deadline_rule_delete,
        name="deadline_rule_delete",
    ),
    # Before tokens/<token_id>: "bulk" is also a well-formed token id.
    path("tokens/bulk", bulk.token_bulk, name="token_bulk"),
    path("tokens/<str:token_id>", views.token_detail, name="token_detail"),
    path("tokens/<str:token_id>/audit.jsonl", views.token_audit, name="token_audit"),
    path("tokens/<str:token_id>/approve", views.token_approve, name="token_approve"),
    path("tokens/<str:token_id>/reject", views.token_reject, name="token_reject"),
    path("tokens/<str:token_id>/not-now", views.token_not_now, name="token_not_now"),
    path("tokens/<str:token_id>/complete", views.token_complete, name="token_complete"),
    path(
        "tokens/<str:token_id>/force-timeout",
        views.token_force_timeout,
        name="token_force_timeout",
    ),
    path("tokens/<str:token_id>/cancel", views.token_cancel, name="token_cancel"),
    path("tokens/<str:token_id>/extend", views.token_extend, name="token_extend"),
    path(
        "tokens/<str:token_id>/recipients/<int:recipient_id>/revoke",
        views.recipient_revoke,
        name="recipient_revoke",
    ),
]
