"""Storage rules: nothing is acknowledged unless it is in Redis, and what was acknowledged survives."""

from __future__ import annotations

import asyncio

from gateway.intake.context import INTAKE
from gateway.shell.app import create_app
from gateway.shell.redis_embedded import EmbeddedRedis
from gateway.shell.serve import start_site
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from mocks.portal.shep_client import SyncChannelClient
from tests.helpers import PORTAL, PORTAL_PASSWORD, free_port, make_settings, message_id, rest_request


async def test_storage_down_means_503_and_no_backend_call(system, http, tmp_path) -> None:
    library_url = system.settings.services[READER_TICKET_SERVICE].endpoint.rsplit("/api/", 1)[0]
    port = free_port()
    settings = make_settings(tmp_path, system.pki, port=port, library_url=library_url)
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    runner = await start_site(create_app(settings, redis_url=dead_redis), "127.0.0.1", port)
    calls = system.library_calls
    try:
        document = signed_application(system.pki.person("aigerim"), READER_TICKET_SERVICE)
        async with http.post(f"{settings.base_url}/api/v1/requests", json=rest_request(document)) as response:
            body = await response.json(content_type=None)
            assert response.headers["Retry-After"]
        assert response.status == 503
        assert body["code"] == "GATEWAY_STORAGE_UNAVAILABLE"
        async with http.get(f"{settings.base_url}/health") as response:
            assert response.status == 503
            assert await response.json() == {"status": "unavailable"}
    finally:
        await runner.cleanup()
    assert system.library_calls == calls


async def test_acknowledged_application_survives_a_redis_restart(system, tmp_path) -> None:
    """The append-only file is on: stop redis after the ack, start it again, the cabinet still has it."""
    library_url = system.settings.services[READER_TICKET_SERVICE].endpoint.rsplit("/api/", 1)[0]
    port = free_port()
    settings = make_settings(tmp_path, system.pki, port=port, library_url=library_url)
    redis_dir = tmp_path / "redis"
    server = EmbeddedRedis(redis_dir)
    server.start()
    runner = await start_site(create_app(settings, redis_url=server.url), "127.0.0.1", port)
    try:
        client = await asyncio.to_thread(SyncChannelClient, f"{settings.base_url}/shep/sync?wsdl")
        aigerim = system.pki.person("aigerim")
        mid = message_id()
        document = signed_application(aigerim, READER_TICKET_SERVICE)
        result = await asyncio.to_thread(lambda: client.send(
            service_id=READER_TICKET_SERVICE, sender_id=PORTAL, password=PORTAL_PASSWORD,
            document=document, message_id=mid))
        assert result.ok
        server.stop()
        restarted = EmbeddedRedis(redis_dir, port=server.port)
        restarted.start()
        try:
            store = runner.app[INTAKE].store
            app = await store.find_for(aigerim.iin, mid, sender_id=PORTAL)
            assert app is not None and app.status == "completed"
            assert app.result and "ReaderTicket" in app.result
        finally:
            restarted.stop()
    finally:
        await runner.cleanup()
        server.stop()


async def test_a_final_state_is_never_undone_by_a_stale_copy(gw) -> None:
    """Two actors hold copies of one application; the late, stale write of a non-final state is refused."""
    from gateway.lifecycle.application import Application, Status
    from gateway.lifecycle.store import ApplicationStore, utc_now

    store = ApplicationStore(gw.redis)
    now = utc_now()
    app = Application(id="{00000000-0000-0000-0000-000000000001}", sender_id="portal", message_id="m-1",
                      service_id="s", channel="rest", applicant_iin="880314405125", applicant_name="A",
                      status=Status.ROUTED, created_at=now, updated_at=now, document=b"<d/>", report={})
    await store.create(app, [(Status.ROUTED, "routed")])
    stale = Application.from_json(app.to_json())
    app.status = Status.COMPLETED
    assert await store.save(app, "done")
    stale.status = Status.IN_PROGRESS
    assert not await store.save(stale, "late progress report")
    assert (await store.get(app.id)).status is Status.COMPLETED
    assert [event["status"] for event in await store.history(app.id)] == ["routed", "completed"]
    app.status = Status.ROUTED
    assert await store.save(app, "an operator replays it", reopen=True)
    assert (await store.get(app.id)).status is Status.ROUTED
