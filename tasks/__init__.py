"""One Prefect task per pipeline stage; each reads params, calls scan_core, writes artifacts."""

from tasks.embed import embed
from tasks.evaluate import evaluate
from tasks.mine import mine
from tasks.prepare import prepare
from tasks.pretext import pretext
from tasks.scan import scan
from tasks.selflabel import selflabel

STAGE_TASKS = {
    "prepare": prepare,
    "pretext": pretext,
    "embed": embed,
    "mine": mine,
    "scan": scan,
    "selflabel": selflabel,
    "evaluate": evaluate,
}
