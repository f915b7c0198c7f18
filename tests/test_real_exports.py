"""Lists as tools and people export them (tests/fixtures/exports, described row by row in its
EXPECTED.md): Outlook, Google Contacts, Mailchimp, HubSpot, LinkedIn, Salesforce, Swedish Excel,
Excel for Mac, a badge scanner's 'Unicode text', template workbooks, phones' vCards. Each imported alone into a
fresh embedded database: every row accounted for, and the values a person would check first."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_ingest.models import Lead, RawItem

EXPORTS = Path(__file__).parent / "fixtures" / "exports"

# file: (outcome counts, encoding, {lead's email: (field, value) or {field: value}} spot checks)
CASES = {
    "01_outlook_contacts.csv": ({"created": 8}, "utf-8", {
        # 'Business Country' gives the region; 'Business State' is his state, not a detail
        "mike.johnson@brightpathsolutions.com": {"phone": "+12125550147", "state_or_province": "NY"},
        "Sofia.Andersson@kronfagel.se": ("company_name", "Kronfågel AB"),
        # both numbers kept: the business one to call, the UK mobile read in her row's country
        "m.oneill@harbourline.co.uk": {"phone": "+442079460958", "mobile_phone": "+447911123456"}}),
    "01b_outlook_desktop_export_ansi.csv": ({"created": 5}, "cp1252", {
        "asa.nystrom@ostkustmedia.se": ("last_name", "Nyström")}),  # E-mail 2 beside an Exchange name
    "02_google_contacts.csv": ({"created": 7}, "utf-8", {
        # ' ::: ' joined values; each number by its label: the work one the phone, the mobiles the mobile
        "erik.sandberg@tornqvistco.se": {"phone": "+46846500430", "mobile_phone": "+46701740622"}}),
    # Google's older export: each number with its kind ('Mobile', 'Work ::: Mobile'); the title, not 'Occupation'
    "02b_google_contacts_legacy_typed_phones.csv": ({"created": 5}, "utf-8", {
        "henrik.blom@blomsverkstad.se": {"phone": "+4636711200", "mobile_phone": "+46702345678",
                                         "job_title": "Verkstadschef"},
        "cecilia.holm@holmdesign.se": {"phone": "+4686123400", "mobile_phone": "+46739876543"}}),
    "02c_google_contacts_labelled_phones.csv": ({"created": 4}, "utf-8", {  # 'Phone 2 - Label' = Mobile
        "karl@svenssonsel.se": {"phone": "+4636123456", "mobile_phone": "+46761112233"},
        "lisa.ek@gmail.com": {"phone": "+4687654321", "mobile_phone": "+46701112233"}}),
    "03_mailchimp_subscribed_members_export_3f9a1c2b7e.csv": ({"created": 7}, "utf-8", {
        "kim.larsen@nordlys.dk": ("phone", "+4532123456"),
        "anna.berg@nordvikfrakt.se": ("state_or_province", None),  # REGION: where her IP address was placed
        # the whole name typed into FNAME, LNAME empty: split as a careful operator would
        "ingrid.svensson@bredbandsbolaget.se": {"first_name": "Ingrid", "last_name": "Svensson"},
        "MAGNUS.OLSSON@skogsbrukstjanst.se": {"first_name": "Magnus", "last_name": "Olsson"}}),  # typed in capitals
    # Mailchimp's 'cleaned' export: addresses that bounced ('CLEAN_TIME'), put on the do-not-contact list
    "03b_mailchimp_cleaned_members_export_3f9a1c2b7e.csv": ({"suppressed": 2}, "utf-8", {}),
    "04_hubspot-crm-exports-all-contacts-2026-05-20.csv": ({"created": 7}, "utf-8", {
        "tom.becker@rheinwerk-logistik.de": ("phone", "+492214710123"),
        "daniel.kim@pacificrimtools.com": ("phone", "+14155550132;ext=204")}),  # 'ext. 204' kept, not digits
    "04b_hubspot-crm-exports-associated-company.csv": ({"created": 3, "suppressed": 1}, "utf-8", {
        "ida.holmgren@vastkustfisk.se": ("company_name", "Västkust Fisk AB")}),  # 'Associated Company'
    # most connections have no address: each is known by the profile the row links (a key), one with none rejected
    "05_linkedin_Connections.csv": ({"created": 7, "rejected": 1}, "utf-8", {
        "karin@ohmanscafe.se": ("job_title", "Ägare")}),
    "06_salesforce_report1747730520123.csv": ({"created": 7, "ignored": 5}, "utf-8-sig", {  # the report's footer
        "ahmed.hassan@isbergsmaskin.se": ("phone", "+46406460012")}),
    "06b_salesforce_rapport_sv.csv": ({"created": 2, "ignored": 6}, "utf-8-sig", {  # Swedish labels and footer
        "anna.strom@strombygg.se": ("company_name", "Ström Bygg AB")}),  # 'Företag/konto'
    "07_excel_sv_semikolon_ansi.csv": ({"created": 7}, "cp1252", {
        "johan.lindqvist@hallbergsbygg.se": ("phone", "+46701740612")}),  # Excel dropped its leading 0
    "08_excel_sv_elmia_mobil_som_tal.xlsx": ({"created": 8}, None, {
        "ola.nordmann@fjordfrakt.no": ("phone", "+4741234567")}),  # a number cell, read in the row's country
    "09_badge_scans_unicode_text.txt": ({"created": 7, "duplicate_in_file": 1, "rejected": 1}, "utf-16", {
        "john.smith@brightpathsolutions.com": ("last_name", "Smith")}),  # 'John Smith Jr.'
    "10a_namn_efternamn_fornamn.csv": ({"created": 8}, "utf-8", {
        "gustav@klintark.se": ("last_name", "af Klint")}),
    "10b_kontaktperson_semikolon.csv": ({"created": 8}, "utf-8-sig", {
        "per.holm@holmsoner.se": ("first_name", "Per"),
        "info@kronfagel.se": {"first_name": None, "company_name": "Kronfågel AB"}}),  # 'Växel' is no one's name
    "11_vendor_list_messy.csv": ({"created": 9, "duplicate_in_file": 1, "rejected": 2}, "utf-8", {
        "anna.berg@firma.se": ("company_name", "Firma AB"),  # the 'Vendor' column
        "PETRA.LUND@nordicpack.se": {"first_name": "Petra", "last_name": "Lund"}}),
    "12a_excel_mac2011_cr_macroman.csv": ({"created": 5}, "mac_roman", {
        "bjorn@akessonstra.se": ("company_name", "Åkessons Trä AB")}),
    "12b_embedded_newlines_utf8.csv": ({"created": 6}, "utf-8-sig", {
        "karin@ohmanscafe.se": ("company_name", 'Café "Solrosen"')}),
    "13_formula_injection.csv": ({"created": 9}, "utf-8", {  # stored as given; neutralized when exported
        "johan.lindqvist@hallbergsbygg.se": ("company_name", "=CMD|' /C calc'!A0"),
        "info@rorfix.se": {"phone": "+46701740677", "first_name": None}}),  # a number typed into 'First Name'
    "14a_svenska_rubriker_synonymer.csv": ({"created": 6}, "utf-8-sig", {
        "anna.berg@nordvikfrakt.se": ("company_name", "Nordvik Frakt AB")}),  # 'Org.namn'
    "14b_svenska_rubriker_mejl_roll.csv": ({"created": 5}, "utf-8-sig", {
        "per.holm@holmsoner.se": ("job_title", "Beslutsfattare")}),
    # the list, not the instructions; its sheet's own example row ('Exempel Exempelsson') ignored
    "15a_xlsx_instruktioner_plus_data.xlsx": ({"created": 6, "ignored": 1}, None, {
        "priya@northwind-analytics.co.uk": ("job_title", "CTO")}),
    "15b_xlsx_sammanslagna_rubriker_rad3.xlsx": ({"created": 7, "ignored": 1}, None, {  # 'Totalt: 7 leads'
        "karin@ohmanscafe.se": ("company_name", "Öhmans Café")}),
    "16_duplicates_spellings.csv": ({"created": 7, "duplicate_in_file": 6}, "utf-8", {
        "e.berg@firma.se": ("first_name", "Erik")}),  # shares Anna's number, and is not her
    # Excel 97-2003: the list on its second sheet, under a title; numbers that lost their 0
    "17_affarssystem_kundlista_excel97.xls": ({"created": 5, "rejected": 1}, None, {
        "bjorn@akessonstra.se": {"mobile_phone": "+46701234567", "postal_code": "55302", "city": "Jönköping"},
        "ola.nordmann@fjordfrakt.no": ("mobile_phone", "+4741234567"),
        "info@kronfagel.se": {"first_name": None, "company_name": "Kronfågel AB"}}),
    # a web application's 'Export to Excel': an HTML table named .xls, under a title row
    "18_webbexport_html_tabell.xls": ({"created": 3, "rejected": 1}, "utf-8", {
        "asa.lindstrom@vastteknik.se": {"mobile_phone": "+46701234567", "company_name": "Väst Teknik & Data AB",
                                        "street": "Kungsgatan 5 411 19 Göteborg"},
        "sara@oconnor.ie": {"last_name": "O'Connor", "mobile_phone": "+353871234567"}}),
    "19_xml_kalkylblad_2003.xml": ({"created": 2}, None, {  # Excel's XML Spreadsheet 2003
        "asa@oberg.se": {"mobile_phone": "+46701234567", "last_name": "Öberg"},
        "bo@ek.se": {"first_name": "Bo", "last_name": "Erik"}}),  # a whole name in the first name's column
    # LibreOffice: the list on its second sheet (the first hidden), a million empty rows after it
    "20_libreoffice_masskontakter.ods": ({"created": 2}, None, {
        "asa@oberg.se": {"mobile_phone": "+46701234567", "company_name": "Öberg & Co AB"},
        "lars.ek@ek-bygg.se": ("mobile_phone", "+46739876543")}),
    # vCards: an iPhone's 3.0, Outlook's 2.1 in quoted-printable, Google's 4.0; a card with no way to reach anyone
    "21_kontakter_iphone_outlook_google.vcf": ({"created": 5, "rejected": 1}, "utf-8", {
        "asa@oberg.se": {"mobile_phone": "+46701234567", "company_name": "Öberg & Co AB", "job_title": "VD",
                         "street": "Storgatan 1", "postal_code": "411 01", "city": "Göteborg"},
        "jorgen@stromsbygg.se": {"last_name": "Ström", "phone": "+46812345678", "mobile_phone": "+46739876543"},
        "bo@ek-consulting.co.uk": {"phone": "+442079460958", "country": "United Kingdom"},  # the preferred address
        "karin@berglund.se": ("company_name", "Berg, Lund & Co")}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_export_is_read_as_a_person_would(name, cli, tmp_path, sessions_for):
    counts, encoding, checks = CASES[name]
    result = cli("import", str(EXPORTS / name), "--campaign", "Exports", "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert {k: v for k, v in job["counts"].items() if v and k != "rows"} == counts
    assert job["counts"]["rows"] == sum(counts.values())
    assert job["options"]["encoding"] == encoding
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = {lead.email: lead for lead in session.scalars(select(Lead))}
        reasons = [item.outcome_reason for item in session.scalars(select(RawItem))
                   if item.outcome in ("rejected", "ignored")]
    assert all(reasons), "every row set aside says why"
    for email, check in checks.items():
        for field, value in (check.items() if isinstance(check, dict) else [check]):
            assert getattr(leads[email], field) == value, (email, field)
