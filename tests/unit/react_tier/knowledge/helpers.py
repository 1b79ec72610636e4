"""A tiny knowledge base in the real data files' formats (the 9 DATA_FILES, a handful of records each), built by
the real index builder (jieba words, character uni+bigrams, bm25s, the learned lexicon) in well under a second, so
the fusion / ranking / diversity code of react_tier/knowledge/base.py is unit-tested on a real index.

The texts are real 隋书 / 资治通鉴 / 全唐诗 lines (abridged); the windows are short (40 chars, stride 20) so one
juan gives several overlapping windows.
"""

from __future__ import annotations

import json
from pathlib import Path

from react_tier.knowledge.corpus import (
    BIOGRAPHIES,
    POEMS_DATA2_NANBEICHAO,
    POEMS_DATA2_SUI,
    POEMS_SUI,
    POEMS_SUI_TANG,
    SUISHU_BILINGUAL,
    SUISHU_CLASSICAL,
    ZZTJ_BILINGUAL,
    ZZTJ_CLASSICAL,
)

SUISHU = [
    {"id": "suishu-01", "book": "隋书", "section": "帝纪", "section_juan": "卷一", "juan_overall": "1",
     "first_line": "高祖上",
     "text": "高祖上\n高祖文皇帝，姓杨氏，讳坚，弘农郡华阴人也。汉太尉震八代孙铉，仕燕为北平太守。"
             "皇考从周太祖起义关西，赐姓普六茹氏，位至柱国、大司空、隋国公。"
             "开皇元年二月甲子，上自相府常服入宫，备礼即皇帝位于临光殿。"
             "仁寿四年七月丁未，高祖崩于大宝殿，时年六十四。"},
    {"id": "suishu-03", "book": "隋书", "section": "帝纪", "section_juan": "卷三", "juan_overall": "3",
     "first_line": "炀帝上",
     "text": "炀帝上\n炀皇帝讳广，一名英，小字阿摐，高祖第二子也。"
             "大业元年三月丁未，诏尚书令杨素营建东京。辛亥，发河南诸郡男女百余万，开通济渠。"
             "遣黄门侍郎王弘等往江南造龙舟及杂船数万艘。"},
    {"id": "suishu-52", "book": "隋书", "section": "列传", "section_juan": "卷五十二", "juan_overall": "52",
     "first_line": "韩擒虎",
     "text": "韩擒虎，字子通，河南东垣人也。擒虎少慷慨，以胆略见称。"
             "及大举伐陈，以擒虎为先锋。擒虎率五百人宵济，袭采石，守者皆醉，擒虎遂取之。"
             "俄而寝疾，无何卒，时年五十五。"},
]
SUISHU_PAIRS = [
    {"id": "suishu-01-0001", "book": "隋书", "section": "帝纪", "section_juan": "卷一", "juan_overall": "1",
     "line": "1", "classical": "高祖上高祖文皇帝，姓杨氏，讳坚，弘农郡华阴人也。",
     "modern": "高祖文皇帝姓杨名坚，是弘农郡华阴人。"},
    {"id": "suishu-01-0002", "book": "隋书", "section": "帝纪", "section_juan": "卷一", "juan_overall": "1",
     "line": "2", "classical": "仁寿四年七月丁未，高祖崩于大宝殿，时年六十四。",
     "modern": "仁寿四年七月丁未，隋文帝在大宝殿去世，终年六十四岁。"},
    {"id": "suishu-52-0001", "book": "隋书", "section": "列传", "section_juan": "卷五十二", "juan_overall": "52",
     "line": "1", "classical": "俄而寝疾，无何卒，时年五十五。",
     "modern": "不久患病，没多久就去世了，终年五十五岁。"},
]
ZZTJ = [
    {"id": "zztj-177", "book": "资治通鉴", "section": "隋纪", "section_juan": "隋纪一", "juan_overall": "177",
     "text": "高祖文皇帝上之上开皇九年（己酉，公元五八九年）\n"
             "春，正月，乙丑朔，陈主朝会群臣，大雾四塞。贺若弼自广陵引兵济江。"
             "韩擒虎将五百人宵济，自横江济采石。陈主叔宝与张贵妃、孔贵嫔投于井。"},
]
ZZTJ_PAIRS = [
    {"id": "zztj-177-0001", "book": "资治通鉴", "section": "隋纪", "section_juan": "隋纪一", "juan_overall": "177",
     "line": "1", "classical": "陈主叔宝与张贵妃、孔贵嫔投于井。",
     "modern": "陈后主陈叔宝和张贵妃、孔贵嫔一起躲进了井里。"},
]
BIOS = [
    {"desc": "薛道衡，字玄卿，河東汾陰人。仕隋為內史侍郎，煬帝時賜死。", "name": "薛道衡", "id": "b1"},
    {"desc": "太宗后，長孫氏，河南洛陽人。隋左驍衛將軍晟之女。", "name": "文德皇后", "id": "b2"},
]
DATA2_SUI = [
    {"id": "sui#1", "title": "读曲歌 其一", "author": "", "content": "打坏木栖床，谁能坐相思。"},
    {"id": "sui#2", "title": "读曲歌 其二", "author": "", "content": "千叶红芙蓉，照灼绿水边。"},
    {"id": "sui#3", "title": "读曲歌 其三", "author": "", "content": "思欢久，不爱独枝莲。"},
    {"id": "sui#61", "title": "昔昔盐", "author": "薛道衡",
     "content": "垂柳覆金堤，蘼芜叶复齐。暗牖悬蛛网，空梁落燕泥。"},
    {"id": "sui#780", "title": "春江花月夜二首 其一", "author": "杨广",
     "content": "暮江平不动，春花满正开。流波将月去，潮水带星来。"},
    {"id": "sui#781", "title": "春江花月夜二首 其二", "author": "杨广",
     "content": "夜露含花气，春潭漾月晖。汉水逢游女，湘川值两妃。"},
    {"id": "sui#101", "title": "出塞二首 其一", "author": "杨素", "content": "漠南胡未空，汉将复临戎。"},
    {"id": "sui#102", "title": "出塞二首 其二", "author": "杨素", "content": "汉虏未和亲，忧国不忧身。"},
]
NANBEICHAO = [
    {"id": "nanbeichao#7", "title": "玉树后庭花", "author": "陈叔宝", "content": "丽宇芳林对高阁，新妆艳质本倾城。"},
    {"id": "nanbeichao#8", "title": "旦发青林诗", "author": "孔稚圭", "content": "孤征越清江，游子悲路长。"},
]
SUI_JSONL = [
    {"id": "隋#1", "title": "昔昔盐", "dynasty": "隋", "author": "薛道衡",
     "content": "垂柳覆金堤，蘼芜叶复齐。暗牖悬蛛网，空梁落燕泥。"},
    {"id": "隋#9", "title": "人日思归", "dynasty": "隋", "author": "薛道衡", "content": "入春才七日，离家已二年。"},
]
SUI_TANG = [
    {"id": "隋末唐初#1", "title": "于太原召侍臣赐宴守岁", "dynasty": "隋末唐初", "author": "李世民",
     "content": "四时运灰琯，一夕变冬春。送寒馀雪尽，迎岁早梅新。"},
]


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_data(data_dir: Path) -> Path:
    """The 9 data files under ``data_dir``; returns it."""
    files = {SUISHU_CLASSICAL: _jsonl(SUISHU), SUISHU_BILINGUAL: _jsonl(SUISHU_PAIRS), ZZTJ_CLASSICAL: _jsonl(ZZTJ),
             ZZTJ_BILINGUAL: _jsonl(ZZTJ_PAIRS), BIOGRAPHIES: json.dumps(BIOS, ensure_ascii=False),
             POEMS_DATA2_SUI: json.dumps(DATA2_SUI, ensure_ascii=False),
             POEMS_DATA2_NANBEICHAO: json.dumps(NANBEICHAO, ensure_ascii=False),
             POEMS_SUI: _jsonl(SUI_JSONL), POEMS_SUI_TANG: _jsonl(SUI_TANG)}
    for name, text in files.items():
        path = data_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return data_dir


def tiny_settings(root: Path, **overrides):
    """KnowledgeSettings over the tiny data under ``root`` (index cache in ``root / 'kb'``)."""
    from react_tier.knowledge import KnowledgeSettings

    return KnowledgeSettings(**{"data_dir": root / "data", "cache_dir": root / "kb", "window_chars": 40,
                                "window_stride_chars": 20, **overrides})


PREBUILT = Path(__file__).resolve().parents[3] / "data" / "kb_tiny"  # data/ and the built index kb/<cache key>/


def prebuilt_copy(root: Path) -> Path:
    """The committed tiny data and its prebuilt index, copied under ``root`` (loading it takes ~0.7 s; building it,
    ~3 s more, which mutmut would pay once per mutant). A stale copy (the builder or the aliases changed) is
    rebuilt by KnowledgeBase.load, and test_base_search's first test says to regenerate it."""
    import shutil

    shutil.copytree(PREBUILT, root, dirs_exist_ok=True)
    return root


def regenerate() -> Path:
    """Rewrite tests/data/kb_tiny from this module: ``python -m tests.unit.react_tier.knowledge.helpers``."""
    import shutil

    from react_tier.knowledge import KnowledgeBase

    shutil.rmtree(PREBUILT, ignore_errors=True)
    write_data(PREBUILT / "data")
    return KnowledgeBase.load(tiny_settings(PREBUILT)).index_dir


if __name__ == "__main__":
    print(regenerate())
