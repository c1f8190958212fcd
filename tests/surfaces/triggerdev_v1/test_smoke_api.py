def test_it_creates_and_retrieves_a_token(api_client):
    created = api_client.post("/api/v1/waitpoints/tokens", {}, format="json")
    assert created.status_code == 200, created.content
    token_id = created.json()["id"]
    retrieved = api_client.get(f"/api/v1/waitpoints/tokens/{token_id}")
    assert retrieved.status_code == 200
    assert retrieved.json()["status"] == "WAITING"
