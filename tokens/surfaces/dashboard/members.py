"""The members page of a project (admin role): invite people by e-mail, set their role, resend
an invitation, take someone out. Thin adapters over ``tokens.domain.tenancy``: POST-only
actions with CSRF, then a redirect with a message; a non-admin gets a 404, as for a project
they are not in."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from tokens.domain import tenancy
from tokens.domain.exceptions import InvalidInput, NotFound
from tokens.models import Membership, Project
from tokens.persistence import selectors

ROLE_CHOICES = [(role.value, role.label) for role in Membership.Role]


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail address", max_length=tenancy.MAX_USERNAME_LENGTH)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Membership.Role.APPROVER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


def _project_for_admin(request: HttpRequest, project_slug: str) -> Project:
    try:
        return selectors.project_get_for_admin(user=request.user, project_slug=project_slug)
    except NotFound:
        raise Http404("Project not found") from None


def _members_url(project: Project) -> str:
    return reverse("dashboard:member_list", args=[project.slug])


def _inviter(request: HttpRequest) -> str:
    user = request.user
    return user.get_full_name() or user.get_username()  # type: ignore[union-attr]


def _render(
    request: HttpRequest, project: Project, *, form: InviteForm | None = None, status: int = 200
) -> HttpResponse:
    members = list(selectors.memberships_of_project(project=project))
    context: dict[str, Any] = {
        "project": project,
        "members": members,
        "environments": list(project.environments.order_by("slug")),
        "form": form or InviteForm(),
        "roles": ROLE_CHOICES,
        "admins": sum(m.role == Membership.Role.ADMIN for m in members),
    }
    return render(request, "dashboard/members.html", context, status=status)


def _report(request: HttpRequest, invitation: tenancy.Invitation) -> None:
    user = invitation.membership.user
    role = invitation.membership.get_role_display().lower()
    done = f"{user.email or user.get_username()} is now {'a' if role == 'viewer' else 'an'} {role}."
    if invitation.email_error:
        messages.warning(
            request,
            f"{done} The e-mail could not be sent ({invitation.email_error}); "
            "fix the e-mail settings and press “Send the invitation again”.",
        )
    elif invitation.emailed and invitation.needs_password:
        messages.success(request, f"{done} We e-mailed them a link to choose their password.")
    elif invitation.emailed:
        messages.success(request, f"{done} We e-mailed them; they log in with their password.")
    else:
        messages.success(request, done)


@login_required
@require_GET
def member_list(request: HttpRequest, project_slug: str) -> HttpResponse:
    return _render(request, _project_for_admin(request, project_slug))


@login_required
@require_POST
def member_invite(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = _project_for_admin(request, project_slug)
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _render(request, project, form=form, status=400)
    try:
        invitation = tenancy.member_invite(
            project=project,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            invited_by=_inviter(request),
        )
    except InvalidInput as error:
        form.add_error(None, error.message)
        return _render(request, project, form=form, status=400)
    _report(request, invitation)
    return redirect(_members_url(project))


@login_required
@require_POST
def member_action(
    request: HttpRequest, project_slug: str, membership_id: int, action: str
) -> HttpResponse:
    project = _project_for_admin(request, project_slug)
    try:
        membership = selectors.membership_get(project=project, membership_id=membership_id)
    except NotFound:
        raise Http404("Member not found") from None
    name = membership.user.email or membership.user.get_username()
    try:
        if action == "role":
            form = RoleForm(request.POST)
            if not form.is_valid():
                raise InvalidInput("Choose viewer, approver or admin.")
            membership = tenancy.member_set_role(
                membership=membership, role=form.cleaned_data["role"]
            )
            messages.success(request, f"{name} is now {membership.get_role_display().lower()}.")
        elif action == "remove":
            tenancy.member_remove(membership=membership)
            messages.success(request, f"{name} is no longer a member of {project}.")
        elif action == "resend":
            invitation = tenancy.Invitation(
                membership=membership, created_user=False, created_membership=False
            )
            _report(request, tenancy.member_notify(invitation, invited_by=_inviter(request)))
        else:
            raise Http404("Unknown action")
    except InvalidInput as error:
        messages.error(request, f"{error.message} Nothing was changed.")
    if selectors.membership_role_for_user(user=request.user, project=project) != "admin":
        return redirect("dashboard:home")  # they stepped down or out: the page is not theirs
    return redirect(_members_url(project))
