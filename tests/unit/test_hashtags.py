"""#Hashtags: text in, text out; nothing in a template or a value is ever evaluated."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from receivables.dunning import hashtags
from receivables.dunning.hashtags import HASHTAGS, UnknownHashtag, Value, check, render_html

VALUES = {name: Value(f"<{name}>") for name in HASHTAGS}
VALUES["OpenItemsTable"] = Value("TABLE", "<table><tr><td>F-1</td></tr></table>", block=True)
VALUES["CustomerName"] = Value("Dupont & Fils <SA>")


def test_hashtags_are_replaced_and_text_is_kept():
    out = hashtags.render_text("Dear #ContactName, #CustomerName owes #OverdueAmount.", VALUES)
    assert out == "Dear <ContactName>, Dupont & Fils <SA> owes <OverdueAmount>."


def test_jinja_and_format_syntax_stay_plain_text():
    template = "{{ ''.__class__ }} {% for x in y %}{{x}}{% endfor %} {0} %(name)s ${HOME}"
    assert check(template, "body", "email") == []
    assert hashtags.render_text(template, VALUES) == template
    html = render_html(template, VALUES)
    assert html == (
        "<p>{{ &#x27;&#x27;.__class__ }} {% for x in y %}{{x}}{% endfor %} {0} %(name)s ${HOME}</p>"
    )


def test_a_value_is_never_read_again_for_hashtags_or_markup():
    values = dict(VALUES, CustomerName=Value("#PortalLink {{ 7*7 }} <script>x</script>"))
    assert (
        hashtags.render_text("#CustomerName", values) == "#PortalLink {{ 7*7 }} <script>x</script>"
    )
    assert render_html("#CustomerName", values) == (
        "<p>#PortalLink {{ 7*7 }} &lt;script&gt;x&lt;/script&gt;</p>"
    )


def test_html_escapes_the_text_and_keeps_paragraphs_and_line_breaks():
    html = render_html(
        "Hello <b>#ContactName</b>,\nline two\n\n#OpenItemsTable\nThanks & bye", VALUES
    )
    assert html == (
        "<p>Hello &lt;b&gt;&lt;ContactName&gt;&lt;/b&gt;,<br>\nline two</p>\n"
        "<table><tr><td>F-1</td></tr></table>\n"
        "<p>Thanks &amp; bye</p>"
    )


def test_double_hash_is_a_literal_hash_and_other_hashes_are_text():
    assert check("Invoice #123, C#, ##Hashtag, 50 #", "body", "email") == []
    assert hashtags.render_text("Invoice #123, ##Hashtag", VALUES) == "Invoice #123, #Hashtag"


def test_unknown_hashtags_are_refused_with_a_suggestion():
    problems = check("Hi #customername, see #Totl and #Nope", "body", "email")
    messages = [p.message for p in problems]
    assert messages[0].startswith("#customername is not a hashtag Relance knows (did you mean")
    assert "#CustomerName" in messages[0]
    assert messages[1] == "#Totl is not a hashtag Relance knows; write ## for a plain #"
    assert "#Nope is not a hashtag Relance knows; write ## for a plain #" == messages[2]
    assert {p.field for p in problems} == {"body"}


def test_a_portal_link_cannot_go_into_a_letter():
    assert check("#PortalLink", "body", "email") == []
    [problem] = check("Visit #PortalLink", "body", "letter")
    assert problem.message == "#PortalLink cannot be used in a letter"


def test_rendering_with_an_unknown_hashtag_builds_nothing():
    try:
        hashtags.render_text("Pay #Bitcoin", VALUES)
    except UnknownHashtag as exc:
        assert exc.names == ["Bitcoin"]
    else:
        raise AssertionError("an unknown hashtag must never be sent as-is")


def test_subject_lines_lose_their_line_breaks():
    values = dict(VALUES, ContactName=Value("Eve\r\nBcc: victim@example.com"))
    assert hashtags.render_line("Hi #ContactName\n", values) == "Hi Eve Bcc: victim@example.com"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_any_text_without_hash_renders_to_itself(text):
    text = text.replace("#", "")
    assert hashtags.render_text(text, VALUES) == text
    # In HTML the only markup is the paragraphs and line breaks Relance adds.
    assert "<" not in re.sub(r"</?p>|<br>", "", render_html(text, VALUES))


def test_every_default_step_has_english_and_french_words_that_pass_the_checks():
    from receivables.dunning.defaults import SCENARIOS, TEMPLATES
    from receivables.ledger.tables import PayerProfile

    codes = {s.template_code for data in SCENARIOS.values() for s in data.steps if s.template_code}
    assert codes == set(TEMPLATES)
    for code in codes:
        template = TEMPLATES[code]
        assert set(template.texts) == {"en", "fr"}, code
        for text in template.texts.values():
            channel = template.channel.value
            assert check(text.subject, "subject", channel) + check(text.body, "body", channel) == []
    assert set(SCENARIOS) == set(PayerProfile)


def test_a_letter_is_dated_from_the_town_never_the_street():
    from receivables.dunning.letters import town_of

    assert town_of("12 rue des Ateliers\n69002 Lyon\nFrance") == "Lyon"
    assert town_of("12 rue des Ateliers\n69002 Lyon") == "Lyon"  # no country line
    assert town_of("Hauptstraße 5\nD-10115 Berlin") == "Berlin"
    assert town_of("Storgatan 1\n114 55 Stockholm\nSweden") == "Stockholm"
    assert town_of("221 Baker Street\nLondon NW1 6XE") == ""  # no leading postcode: no town
    assert town_of("1234 Main Street\nSpringfield, IL 62704") == ""  # the street is not a town
    assert town_of("") == ""
