"""The dunning pages of the back office: agenda, scenarios, templates, penalties."""

from backoffice import agenda, message_templates, penalties, scenarios

ROUTES = [*agenda.ROUTES, *scenarios.ROUTES, *message_templates.ROUTES, *penalties.ROUTES]
