//! The mapping, case by case, and the least write.

use super::*;

fn cic(id: &str, display: &str, personal: Value) -> Value {
    json!({"configurationId": {"id": id, "displayName": display}, "personalInformationProperties": personal})
}

#[test]
fn every_mapping_case() {
    let full = cic(
        "jdoe",
        "",
        json!({
            "emailAddress": " jdoe@example.com ",
            "phoneNumberOfBusiness1": {"number": "+1 (317) 555-0100", "extension": "2100"},
            "phoneNumberOfBusiness2": {"number": "317.555.0101", "extension": ""},
            "phoneNumberOfMobile": {"number": "+13175550199"},
            "phoneNumberOfHome1": {"number": "call me", "extension": ""},
            "phoneNumberOfFax": {"number": "+13175550102", "extension": "9"}
        }),
    );
    let d = desired(&full, Some("1")).unwrap();
    assert_eq!(
        (d.external_id.as_str(), d.user_name.as_str()),
        ("jdoe", "jdoe@example.com")
    );
    assert_eq!(d.display_name, "jdoe", "an empty display name is the user name");
    let phones: Vec<(&str, &str)> = d.phones.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        phones,
        [
            ("mobile", "+13175550199"),
            ("other", "tel:+13175550102;ext=9"),
            ("work", "tel:+13175550100;ext=2100"),
            ("work2", "+13175550101"),
        ]
    );
    assert_eq!(
        d.dropped_phones.len(),
        1,
        "the home number is not a phone number: reported"
    );
    assert_eq!(d.dropped_phones[0].0, "phoneNumberOfHome1");

    let no_email = cic(
        "rroe",
        "R Roe",
        json!({"phoneNumberOfMobile": {"number": "+13175550199"}}),
    );
    let err = desired(&no_email, None).unwrap_err();
    assert_eq!(
        (err.clone(), err.to_string()),
        (NotSynced::NoEmail, "not synced: no business email".to_string())
    );
    assert_eq!(
        desired(&cic("", "x", json!({"emailAddress": "a@b.c"})), None),
        Err(NotSynced::NoId)
    );
    // A display name added later is what the cloud user gets.
    let named = cic("jdoe", "Jane Doe", json!({"emailAddress": "jdoe@example.com"}));
    assert_eq!(desired(&named, None).unwrap().display_name, "Jane Doe");
}

#[test]
fn the_create_body_is_a_valid_scim_create_and_carries_no_password_or_role() {
    let d = desired(
        &cic(
            "jdoe",
            "Jane",
            json!({"emailAddress": "jdoe@example.com", "phoneNumberOfMobile": {"number": "+13175550199"}}),
        ),
        None,
    )
    .unwrap();
    let body = create_body(&d);
    assert_eq!(
        crate::sim::cloud::models::check("ScimV2CreateUser", &body, ""),
        Vec::<String>::new()
    );
    for never in ["password", "roles", "groups"] {
        assert!(body.get(never).is_none(), "{never} is never synced");
    }
    assert_eq!(
        crate::sim::cloud::models::check("ScimV2PatchRequest", &deactivate(), ""),
        Vec::<String>::new()
    );
}

#[test]
fn the_diff_is_empty_when_equal_and_names_only_what_differs() {
    let d = desired(
        &cic(
            "jdoe",
            "Jane",
            json!({"emailAddress": "jdoe@example.com",
                   "phoneNumberOfMobile": {"number": "+13175550199"},
                   "phoneNumberOfHome1": {"number": "+13175550150"}}),
        ),
        None,
    )
    .unwrap();
    let cloud = json!({
        "id": "u1", "userName": "jdoe@example.com", "displayName": "Jane", "externalId": "jdoe", "active": true,
        "phoneNumbers": [
            {"type": "mobile", "value": "+13175550199"},
            {"type": "home", "value": "+13175550150"},
            {"type": "work3", "value": "+13175550999"}
        ]
    });
    assert!(
        diff(&cloud, &d).is_empty(),
        "equal under the mapping: no write (work3 is not ours)"
    );

    let mut changed = d.clone();
    changed.display_name = "Jane Q. Doe".into();
    changed.phones.insert("mobile", "+13175550000".into());
    changed.phones.remove("home");
    changed.phones.insert("work", "tel:+13175550100;ext=2100".into());
    let ops = diff(&cloud, &changed);
    assert_eq!(
        ops,
        vec![
            json!({"op": "replace", "path": "displayName", "value": "Jane Q. Doe"}),
            json!({"op": "add", "path": "phoneNumbers[type eq \"work\"].value", "value": "tel:+13175550100;ext=2100"}),
            json!({"op": "replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+13175550000"}),
            json!({"op": "remove", "path": "phoneNumbers[type eq \"home\"]"}),
        ]
    );
    let mut inactive = cloud.clone();
    inactive["active"] = json!(false);
    assert_eq!(
        diff(&inactive, &d),
        vec![json!({"op": "replace", "path": "active", "value": true})]
    );
}
