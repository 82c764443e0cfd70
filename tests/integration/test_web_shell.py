"""The web shell: layout, health, friendly errors, security headers, allowed hosts."""

from litestar import get

from app import create_app
from tests.conftest import app_client


async def test_layout_and_health(client):
    home = await client.get("/")
    assert home.status_code == 200
    assert "/static/js/htmx-2.0.11.min.js" in home.text and "/static/css/relance.css" in home.text
    health = await client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert (await client.get("/static/js/htmx-2.0.11.min.js")).status_code == 200


async def test_security_headers_on_every_response(client):
    for path in ("/", "/health", "/no-such-page"):
        r = await client.get(path)
        assert r.headers["content-security-policy"].startswith("default-src 'self'")
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"


async def test_friendly_404(client):
    r = await client.get("/no-such-page")
    assert r.status_code == 404
    assert "text/html" in r.headers["content-type"] and "Traceback" not in r.text


async def test_500_never_shows_a_trace(db, settings, databases):
    @get("/boom")
    async def boom() -> str:
        raise RuntimeError("secret internals /etc/passwd")

    app = create_app(settings, engine=await databases.get(db))
    app.register(boom)
    async with app_client(app) as c:
        r = await c.get("/boom")
    assert r.status_code == 500
    assert "secret internals" not in r.text and "Traceback" not in r.text
    assert "went wrong" in r.text.lower()


async def test_unknown_host_refused(client):
    r = await client.get("/health", headers={"host": "evil.example"})
    assert r.status_code == 400
