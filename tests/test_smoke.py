def test_healthz_reports_database_redis_and_workers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["database"] == "ok"
    assert body["redis"] == "ok"
    assert body["workers"] == 0
    assert body["status"] == "degraded"
