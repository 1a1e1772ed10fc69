"""Member labels: unique within a group whatever the names, and safe in a spreadsheet."""
from __future__ import annotations

import csv
import io

from app.db import Prediction, User
from app.extensions import db
from app.web.stored import member_labels


def test_labels_are_unique_where_names_and_initials_collide():
    members = [(374, "Agnieszka Jankowska"), (970, "Agnieszka Jankowska"), (318, "agnieszka Lis"),
               (770, "Adam Jankowski"), (640, "Piotr"), (991, ""), (992, "   ")]
    labels = member_labels(members)
    assert labels == ["Agnieszka #374", "Agnieszka #970", "agnieszka #318", "Adam", "Piotr",
                      "User 991", "User 992"]
    assert len(set(labels)) == len(labels)
    # a first name is left alone when nobody else has it
    assert member_labels([(1, "Ewa Nowak"), (2, "Jan Nowak")]) == ["Ewa", "Jan"]


def test_csv_header_labels_cannot_start_a_formula(api_app, api_client):
    served = api_client.post("/predict/advanced", json={"user_id": 123, "other_users": [124],
                                                        "playlist_length": 3})
    pid = served.headers["X-Prediction-Id"]
    with api_app.app_context():
        db.session.get(User, 124).name = "=HYPERLINK(1) x"
        db.session.commit()
        assert db.session.get(Prediction, pid) is not None
    table = list(csv.reader(io.StringIO(api_client.get(f"/playlists/{pid}.csv")
                                        .get_data(as_text=True))))
    assert table[0][8] == "'=HYPERLINK(1)"
