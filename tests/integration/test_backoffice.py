"""Back office access: sign-in, session cookie, rate limit, every route's roles, CSRF.

The route tests walk the app's own route table, so a page added later is covered without
touching this file: it must declare its roles, refuse the anonymous and the wrong roles,
and refuse a POST without the CSRF token.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest

from app import create_app
from receivables.access import login_throttle
from receivables.access.portal_links import issue_link
from receivables.access.staff import hash_password
from receivables.access.tables import Role, StaffUser
from receivables.history import Actor, ActorKind
from receivables.ledger.tables import Company, Contact, Customer, Item
from receivables.mail.outbox import Recipient, queue_email
from receivables.mail.tables import CapturedMail
from receivables.portal.emails import ComposedEmail, PortalMail
from receivables.portal.feedback import AnswerForm, Proof, submit_answer
from receivables.settings import load_settings
from tests.conftest import TEST_SECRET, app_client, app_settings
from tests.factories import make_company, make_contact, make_customer, make_item

PASSWORD = "correct horse battery"
_HASH = hash_password(PASSWORD)  # argon2 is slow on purpose: hash once for the module
CSRF_IN_PAGE = re.compile(r'name="_csrf_token" value="([^"]+)"')


# ------------------------------------------------------------------ shared world


@dataclass
class World:
    company: Company
    customer: Customer
    contact: Contact
    items: list[Item]
    users: dict[str, StaffUser]
    feedback_ids: list[int] = field(default_factory=list)
    ids: dict[str, int] = field(default_factory=dict)


def stub_mail(base_url: str = "http://testserver.local") -> PortalMail:
    """The portal's mail protocol with a plain composer: what matters here is the queueing."""

    def compose(template: str, context: dict, language: str) -> ComposedEmail:
        numbers = ", ".join(a["number"] for a in context.get("answers", []))
        links = "\n".join(a["review_url"] for a in context.get("answers", []))
        return ComposedEmail(
            subject=f"{template}: {numbers or context.get('number', '')}",
            text=f"{template}\n{links}\n",
            html=f"<p>{template}</p>",
        )

    return PortalMail(compose=compose, mail_from="relance@seller.example", base_url=base_url)


async def make_staff(role: str, email: str | None = None, name: str | None = None) -> StaffUser:
    user = StaffUser(
        email=email or f"{role}@seller.example",
        name=name or f"{role.capitalize()} Person",
        role=role,
        password_hash=_HASH,
    )
    await user.save()
    return user


async def answer(
    world: World,
    item: Item,
    kind: str = "promise",
    tmp: Path | None = None,
    **fields: str,
) -> int:
    """A customer's answer on one invoice, through the portal's own service."""
    if kind == "promise" and "promise_date" not in fields:
        fields["promise_date"] = (date.today() + timedelta(days=14)).isoformat()
    submitted = await submit_answer(
        customer_id=item.customer,
        contact_id=world.contact.id,
        actor=Actor(ActorKind.contact, world.contact.email, world.contact.id),
        ip="198.51.100.4",
        item_ids=[str(item.id)],
        form=AnswerForm(kind=kind, **fields),
        proof=None,
        today=date.today(),
        documents_dir=tmp or Path("/nonexistent"),
        mail=stub_mail(),
    )
    return submitted.feedback_ids[0]


PDF_PROOF = b"%PDF-1.4\n% a bank transfer order\n%%EOF\n"


async def build_world(documents: Path) -> World:
    users = {role.value: await make_staff(role.value) for role in Role}
    company = await make_company(name="Atelier Test SAS")
    customer = await make_customer(
        company, name="Brasserie du Port", ref="C0042", collector=users["collector"].id
    )
    contact = await make_contact(customer, name="Julie Lambert", email="julie@brasserie.example")
    today = date.today()
    items = [
        await make_item(customer, "1200.00", due=today - timedelta(days=40), number="F-1001"),
        await make_item(customer, "300.50", due=today - timedelta(days=5), number="F-1002"),
        await make_item(customer, "99.99", due=today + timedelta(days=20), number="F-1003"),
    ]
    world = World(company, customer, contact, items, users)
    world.feedback_ids.append(await answer(world, items[0]))
    paid = await submit_answer(
        customer_id=customer.id,
        contact_id=contact.id,
        actor=Actor(ActorKind.contact, contact.email, contact.id),
        ip="198.51.100.4",
        item_ids=[str(items[1].id)],
        form=AnswerForm(
            kind="paid", paid_on=today.isoformat(), method="transfer", reference="VIR-77"
        ),
        proof=Proof("virement.pdf", PDF_PROOF),
        today=today,
        documents_dir=documents,
        mail=stub_mail(),
    )
    world.feedback_ids.append(paid.feedback_ids[0])
    issued = await issue_link(
        customer=customer,
        contact=contact,
        secret_key=TEST_SECRET,
        base_url="http://testserver.local",
        days=30,
        issued_by="test",
    )
    message = await queue_email(
        company_id=company.id,
        customer_id=customer.id,
        kind="reminder",
        mail_from="ar@seller.example",
        to=[Recipient(contact.email, contact.name)],
        subject="Your statement",
        text_body="Dear Julie,\nplease find your statement.",
        html_body="<p>Dear Julie,</p><p>please find your statement.</p>",
        actor=Actor.system(),
    )
    captured = await CapturedMail.insert(
        CapturedMail(
            mail_from="ar@seller.example",
            rcpt_to=contact.email,
            subject="Your statement",
            raw=(
                "From: ar@seller.example\r\nTo: julie@brasserie.example\r\n"
                "Subject: Your statement\r\nMIME-Version: 1.0\r\n"
                'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
                "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain words\r\n"
                "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
                "<p>Rich words</p>\r\n--b--\r\n"
            ),
        )
    ).returning(CapturedMail.id)
    world.ids = {
        "customer_id": customer.id,
        "item_id": items[0].id,
        "contact_id": contact.id,
        "link_id": issued.link.id,
        "feedback_id": world.feedback_ids[1],
        "message_id": message.id,
        "mail_id": captured[0]["id"],
        "user_id": users["viewer"].id,
    }
    return world


@pytest.fixture
async def bo_app(db, databases, tmp_path):
    """The whole app, in demo mode (captured mail on), on the test's database."""
    settings = load_settings(
        {
            "SECRET_KEY": TEST_SECRET,
            "BASE_URL": "http://testserver.local",
            "DOCUMENTS_DIR": str(tmp_path / "documents"),
        }
    )
    return create_app(settings, engine=await databases.get(db), demo=True)


@pytest.fixture
async def world(bo_app) -> World:
    return await build_world(app_settings(bo_app).documents_path)


async def sign_in(client, email: str, password: str = PASSWORD, next_path: str = "") -> str:
    """Sign in through the form; returns the session's CSRF token."""
    page = await client.get("/backoffice/login")
    token = CSRF_IN_PAGE.search(page.text).group(1)
    form = {"email": email, "password": password, "_csrf_token": token}
    if next_path:
        form["next"] = next_path
    r = await client.post("/backoffice/login", data=form)
    assert r.status_code == 303, r.text[:500]
    return await csrf_of(client)


async def csrf_of(client) -> str:
    page = await client.get("/backoffice/customers")
    assert page.status_code == 200
    return CSRF_IN_PAGE.search(page.text).group(1)


def backoffice_routes(app) -> list[tuple[str, str, dict]]:
    """(method, path template, opt) of every back-office handler."""
    found = []
    for route in app.routes:
        if not route.path.startswith("/backoffice"):
            continue
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods):
                if method in ("HEAD", "OPTIONS"):
                    continue
                found.append((method, route.path, handler.opt))
    return found


PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def concrete(path: str, ids: dict[str, int]) -> str:
    """The path with real ids; parameters of pages built elsewhere (dunning) get 1."""
    return PATH_PARAM.sub(lambda m: str(ids.get(m.group(1), 1)), path)


def knows_every_id(path: str, ids: dict[str, int]) -> bool:
    return all(name in ids for name in PATH_PARAM.findall(path))


# ------------------------------------------------------------------ routes and roles


async def test_every_route_declares_who_may_call_it(bo_app):
    routes = backoffice_routes(bo_app)
    assert len(routes) >= 30
    for method, path, opt in routes:
        assert opt.get("public") or opt.get("roles"), f"{method} {path} declares no roles"
    public = {(m, p) for m, p, opt in routes if opt.get("public")}
    assert public == {("GET", "/backoffice/login"), ("POST", "/backoffice/login")}


async def test_every_route_refuses_the_anonymous(bo_app, world):
    async with app_client(bo_app) as anon:
        for method, path, opt in backoffice_routes(bo_app):
            if opt.get("public"):
                continue
            url = concrete(path, world.ids)
            r = await anon.request(method, url, data={"reason": "x"} if method == "POST" else None)
            # Sent to sign in (a refused POST is never replayed afterwards).
            assert r.status_code == 303, f"{method} {url}: {r.status_code}"
            assert r.headers["location"].startswith("/backoffice/login"), url
            # htmx asks for a full navigation to the sign-in page instead of a swap.
            r = await anon.request(method, url, headers={"HX-Request": "true"})
            assert r.status_code in (401, 403), f"{method} {url} (htmx)"
            if r.status_code == 401:
                assert r.headers["hx-redirect"].startswith("/backoffice/login")
    # Nothing an anonymous POST reached was changed.
    customer = await Customer.objects().get(Customer.id == world.customer.id)
    assert not customer.blocked
    assert await StaffUser.count() == len(Role)


async def test_every_route_refuses_the_wrong_roles(bo_app, world):
    for role in Role:
        async with app_client(bo_app) as client:
            token = await sign_in(client, world.users[role.value].email)
            for method, path, opt in backoffice_routes(bo_app):
                if opt.get("public"):
                    continue
                url = concrete(path, world.ids)
                allowed = role.value in opt["roles"]
                if allowed and method != "GET":
                    continue  # allowed changes are exercised by the feature tests
                r = await client.request(
                    method,
                    url,
                    headers={"x-csrftoken": token},
                    data={"reason": "x"} if method == "POST" else None,
                )
                if allowed and knows_every_id(path, world.ids):
                    assert r.status_code in (200, 303), f"{role.value} {method} {url}"
                elif allowed:  # a page of another part, with an id this test did not make
                    assert r.status_code not in (401, 403), f"{role.value} {method} {url}"
                else:
                    assert r.status_code == 403, f"{role.value} {method} {url}: {r.status_code}"
    # The viewer, finance and the others changed nothing they were refused.
    customer = await Customer.objects().get(Customer.id == world.customer.id)
    assert not customer.blocked
    assert [u.role for u in await StaffUser.objects().order_by(StaffUser.id)] == [
        r.value for r in Role
    ]


async def test_the_navigation_follows_the_role(bo_app, world):
    everyone = {"Dashboard", "Customers", "Feedback", "Captured mail"}
    # The dunning pages (another part of the back office) appear once they are mounted.
    mounted = {route.path for route in bo_app.routes}
    everyone |= {
        label
        for label, path in (
            ("Agenda", "/backoffice/agenda"),
            ("Scenarios", "/backoffice/scenarios"),
        )
        if path in mounted
    }
    # Finance's fuller pages replace the basic payments list in the menu once mounted.
    money = {"Finance"} if "/backoffice/finance" in mounted else {"Payments"}
    expectations = {
        "viewer": everyone,
        "collector": everyone,
        "finance": everyone | money,
        "admin": everyone | money | {"Users"},
    }
    for role, labels in expectations.items():
        async with app_client(bo_app) as client:
            await sign_in(client, world.users[role].email)
            page = await client.get("/backoffice/customers")
            nav = re.search(r'<nav class="main-nav".*?</nav>', page.text, re.S).group(0)
            shown = set(re.findall(r'<a href="[^"]+"[^>]*>([^<]+?)(?: <span|</a>)', nav))
            assert shown == labels, role
            assert 'aria-current="page"' in nav and ">Customers" in nav
            # The pending-feedback count is on the Feedback entry.
            assert re.search(r'Feedback <span class="nav-badge">2</span>', nav)


# ------------------------------------------------------------------ CSRF


async def test_a_post_without_the_csrf_token_is_403(bo_app, world):
    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["admin"].email)
        for method, path, _opt in backoffice_routes(bo_app):
            if method != "POST":
                continue
            url = concrete(path, world.ids)
            r = await client.post(url, data={"reason": "no token", "ids": "1"})
            assert r.status_code == 403, f"POST {url} without token: {r.status_code}"
            r = await client.post(
                url, data={"reason": "forged"}, headers={"x-csrftoken": token[:-2] + "xx"}
            )
            assert r.status_code == 403, f"POST {url} with a wrong token"
        customer = await Customer.objects().get(Customer.id == world.customer.id)
        assert not customer.blocked
        # With the token (header, as htmx sends it; or the form field) the same POST works.
        r = await client.post(
            f"/backoffice/customers/{world.customer.id}/block",
            data={"reason": "60 days late"},
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 303
        r = await client.post(
            f"/backoffice/customers/{world.customer.id}/unblock",
            data={"reason": "paid", "_csrf_token": token},
        )
        assert r.status_code == 303
        assert not (await Customer.objects().get(Customer.id == world.customer.id)).blocked


async def test_the_login_form_itself_needs_the_csrf_token(bo_app, world):
    async with app_client(bo_app) as client:
        await client.get("/backoffice/login")
        r = await client.post(
            "/backoffice/login", data={"email": world.users["admin"].email, "password": PASSWORD}
        )
        assert r.status_code == 403
        assert "relance_staff" not in r.headers.get("set-cookie", "") or "uid" not in r.text


async def test_the_token_of_another_session_is_refused(bo_app, world):
    async with app_client(bo_app) as mallory, app_client(bo_app) as alice:
        stolen = await sign_in(mallory, world.users["collector"].email)
        await sign_in(alice, world.users["admin"].email)
        r = await alice.post(
            f"/backoffice/customers/{world.customer.id}/block",
            data={"reason": "x"},
            headers={"x-csrftoken": stolen},
        )
        assert r.status_code == 403


# ------------------------------------------------------------------ sign-in and session


async def test_session_cookie_flags_and_encryption(bo_app, world):
    async with app_client(bo_app) as client:
        page = await client.get("/backoffice/login")
        token = CSRF_IN_PAGE.search(page.text).group(1)
        r = await client.post(
            "/backoffice/login",
            data={"email": world.users["admin"].email, "password": PASSWORD, "_csrf_token": token},
        )
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("relance_staff=")
        flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite", "path"} <= flags
        assert "samesite=lax" in cookie.lower()
        assert "path=/backoffice" in cookie.lower()
        assert "secure" not in flags  # BASE_URL is http here
        # Encrypted: neither the user's id nor the CSRF token can be read from the cookie.
        value = cookie.split(";")[0].split("=", 1)[1].strip('"')
        raw = base64.b64decode(value + "=" * (-len(value) % 4))
        assert b'"uid"' not in raw and token.encode() not in raw
        # A cookie altered by one character is no session at all.
        tampered = value[:20] + ("A" if value[20] != "A" else "B") + value[21:]
        async with app_client(bo_app) as other:
            other.cookies.set("relance_staff", tampered, path="/backoffice")
            r = await other.get("/backoffice/customers")
            assert r.status_code == 303


async def test_session_cookie_is_secure_under_https(db, databases, world):
    settings = load_settings({"SECRET_KEY": TEST_SECRET, "BASE_URL": "https://testserver.local"})
    app = create_app(settings, engine=await databases.get(db))
    async with app_client(app) as client:
        page = await client.get("/backoffice/login")
        cookie = page.headers["set-cookie"].lower()
        assert "secure" in [p.strip() for p in cookie.split(";")]
        assert "httponly" in cookie and "samesite=lax" in cookie


async def test_sign_in_returns_to_the_page_asked_for(bo_app, world):
    async with app_client(bo_app) as client:
        wanted = f"/backoffice/items/{world.items[1].id}?x=1"
        r = await client.get(wanted)
        assert r.status_code == 303
        assert r.headers["location"] == "/backoffice/login?next=%2Fbackoffice%2Fitems%2F" + (
            f"{world.items[1].id}%3Fx%3D1"
        )
        login = await client.get(r.headers["location"])
        assert f'name="next" value="{wanted}"' in login.text
        token = CSRF_IN_PAGE.search(login.text).group(1)
        r = await client.post(
            "/backoffice/login",
            data={
                "email": world.users["viewer"].email,
                "password": PASSWORD,
                "next": wanted,
                "_csrf_token": token,
            },
        )
        assert r.status_code == 303 and r.headers["location"] == wanted
        assert (await client.get(wanted)).status_code == 200


@pytest.mark.parametrize(
    "evil",
    [
        "https://evil.example/backoffice/",
        "//evil.example/backoffice/",
        "/\\evil.example",
        "/p/sometoken",
        "javascript:alert(1)",
        "/backoffice/../p/x",
    ],
)
async def test_sign_in_never_redirects_off_the_back_office(bo_app, world, evil):
    async with app_client(bo_app) as client:
        login = await client.get("/backoffice/login", params={"next": evil})
        token = CSRF_IN_PAGE.search(login.text).group(1)
        r = await client.post(
            "/backoffice/login",
            data={
                "email": world.users["viewer"].email,
                "password": PASSWORD,
                "next": evil,
                "_csrf_token": token,
            },
        )
        assert r.status_code == 303
        location = r.headers["location"]
        assert location.startswith("/backoffice") and not location.startswith("//")
        assert ".." not in location and "evil" not in location


async def test_wrong_password_and_inactive_user_are_refused_alike(bo_app, world):
    viewer = world.users["viewer"]
    await StaffUser.update({StaffUser.active: False}).where(StaffUser.id == viewer.id)
    async with app_client(bo_app) as client:
        answers = []
        for email, password in (
            (world.users["admin"].email, "wrong password!"),
            (viewer.email, PASSWORD),
            ("nobody@seller.example", PASSWORD),
        ):
            page = await client.get("/backoffice/login")
            token = CSRF_IN_PAGE.search(page.text).group(1)
            r = await client.post(
                "/backoffice/login",
                data={"email": email, "password": password, "_csrf_token": token},
            )
            answers.append((r.status_code, "do not match an active account" in r.text))
            assert f'value="{email}"' in r.text  # the form keeps what was typed
        assert answers == [(401, True)] * 3


async def test_logout_deactivation_and_password_change_end_sessions(bo_app, world):
    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        r = await client.post("/backoffice/logout", headers={"x-csrftoken": token})
        assert r.status_code == 303 and r.headers["location"] == "/backoffice/login"
        assert (await client.get("/backoffice/customers")).status_code == 303

    async with app_client(bo_app) as client:
        await sign_in(client, world.users["collector"].email)
        await StaffUser.update({StaffUser.active: False}).where(
            StaffUser.id == world.users["collector"].id
        )
        assert (await client.get("/backoffice/customers")).status_code == 303

    async with app_client(bo_app) as client:
        await sign_in(client, world.users["finance"].email)
        await StaffUser.update({StaffUser.password_hash: hash_password("another password")}).where(
            StaffUser.id == world.users["finance"].id
        )
        assert (await client.get("/backoffice/customers")).status_code == 303


async def test_login_rate_limit_per_address_and_email(bo_app, world):
    admin = world.users["admin"].email
    async with app_client(bo_app) as client:

        async def attempt(email, password, ip_headers=None):
            page = await client.get("/backoffice/login")
            token = CSRF_IN_PAGE.search(page.text).group(1)
            return await client.post(
                "/backoffice/login",
                data={"email": email, "password": password, "_csrf_token": token},
            )

        for _ in range(login_throttle.MAX_PER_ACCOUNT):
            assert (await attempt(admin, "not the password")).status_code == 401
        # Locked: even the right password is not tried, and the page says when to retry.
        r = await attempt(admin, PASSWORD)
        assert r.status_code == 429
        # The window slides (estimated): a locked pair waits at most two windows.
        assert 0 < int(r.headers["retry-after"]) <= 2 * login_throttle.WINDOW.total_seconds() + 1
        assert "Too many failed attempts" in r.text
        # Another account from the same address is not locked by it.
        r = await attempt(world.users["viewer"].email, PASSWORD)
        assert r.status_code == 303

    # The same account from another address is not locked either (the pair is the key).
    assert (await login_throttle.attempt("192.0.2.99", admin)).allowed
    assert not (await login_throttle.attempt("203.0.113.7", admin)).allowed
    # Once the lock has run out, the pair may try again.
    later = time.time() + 2 * login_throttle.WINDOW.total_seconds()
    assert (await login_throttle.attempt("203.0.113.7", admin, now=later)).allowed


async def test_many_accounts_from_one_address_are_limited_too(db):
    now = time.time()
    for n in range(login_throttle.MAX_PER_ADDRESS):
        assert (await login_throttle.attempt("192.0.2.1", f"user{n}@x.example", now=now)).allowed
    assert not (await login_throttle.attempt("192.0.2.1", "fresh@x.example", now=now)).allowed
    assert (await login_throttle.attempt("192.0.2.2", "fresh@x.example", now=now)).allowed
    # A sign-in that succeeds gives the address its attempt back.
    await login_throttle.succeeded("192.0.2.1", "user0@x.example", now=now)
    assert (await login_throttle.attempt("192.0.2.1", "fresh@x.example", now=now)).allowed
    assert not (await login_throttle.attempt("192.0.2.1", "other@x.example", now=now)).allowed


async def test_concurrent_sign_in_attempts_cannot_exceed_the_limit(pg_db):
    """Counted before the password is checked, atomically: a burst of parallel guesses
    (separate connections of the pool, as separate processes would be) gets 5 tries."""
    verdicts = await asyncio.gather(
        *(login_throttle.attempt("198.51.100.9", "admin@x.example") for _ in range(20))
    )
    assert sum(v.allowed for v in verdicts) == login_throttle.MAX_PER_ACCOUNT


async def test_start_page_depends_on_the_role(bo_app, world):
    dashboard = "/backoffice/dashboard"
    starts = {"collector": "/backoffice/feedback", "finance": dashboard, "admin": dashboard}
    for role in Role:
        async with app_client(bo_app) as client:
            await sign_in(client, world.users[role.value].email)
            r = await client.get("/backoffice/")
            assert r.status_code == 303
            assert r.headers["location"] == starts.get(role.value, "/backoffice/customers")
