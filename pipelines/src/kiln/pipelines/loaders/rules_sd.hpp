// Stable Diffusion 1.x / 2.x / SDXL single files (the CompVis/Stability "LDM" layout):
//   model.diffusion_model.*  U-Net (input_blocks / middle_block / output_blocks)
//   first_stage_model.*      VAE (encoder.down.N.block.M, mid.attn_1 with 1x1-conv q/k/v)
//   cond_stage_model.transformer.text_model.*    SD1 CLIP-L (transformers names)
//   cond_stage_model.model.*                     SD2 OpenCLIP ViT-H (fused in_proj)
//   conditioner.embedders.0.transformer.*, conditioner.embedders.1.model.*   SDXL
//   conditioner.embedders.0.model.*              SDXL refiner (OpenCLIP bigG only)
// Ref: diffusers loaders/single_file_utils.py convert_ldm_unet_checkpoint,
//      convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint, convert_open_clip_checkpoint.
#pragma once

#include <vector>

#include "kiln/pipelines/loaders/family.hpp"

namespace kiln::pipelines::loaders::sd {

// The U-Net's block structure, read from LDM names and shapes.
struct UnetLayout {
  int levels = 0, layers_per_block = 0;
  std::vector<int64_t> channels;  // per level
  std::vector<int> down_depth;    // transformer layers per down level, 0: no attention
  std::vector<int> up_depth;      // per up block (diffusers order), 0: no attention
  bool mid_attention = false;
  static UnetLayout read(const KeyView& unet);
};

// LDM -> diffusers names of one U-Net / VAE layout (the loops of convert_ldm_*_checkpoint).
RenameTable unet_rules(const UnetLayout& l);
// Resnets map by index ("{}"), so only the level count matters (the decoder's are reversed).
RenameTable vae_rules(int levels);

}  // namespace kiln::pipelines::loaders::sd
